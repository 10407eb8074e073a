"""Benchmark: streamed CSV contact import of a generated file (control/csv_import.py).

    .venv/bin/python -m bench.csv_import [--rows 1000000] [--trace-memory]

Generates the CSV in memory chunk by chunk (never the whole file), feeds it to the importer in
64 KiB chunks, and prints rows/s, MB/s and, with --trace-memory, the peak of Python allocations
(tracemalloc slows the run about 2x, so the rate is measured without it by default).
Last line: {"rows_per_s": N, "mb_per_s": N, "rows": N, "peak_mb": N|null}
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc
from collections.abc import Iterator

from control.csv_import import CHUNK_SIZE, import_csv

HEADER = "email,first_name,last_name,city,plan,consent_source,consent_at,double_opt_in\r\n"


def generated_csv(rows: int, *, invalid_every: int = 100) -> Iterator[bytes]:
    """A contact file of `rows` data rows in CHUNK_SIZE pieces; every `invalid_every`th row is
    faulty (bad address or duplicate), as real uploads are."""
    buffer = [HEADER]
    size = len(HEADER)
    for i in range(rows):
        if invalid_every and i % invalid_every == 50:
            email = f"broken-address-{i}.example.com"
        elif invalid_every and i % invalid_every == 75:
            email = f"contact{i - 1}@mail{(i - 1) % 97}.example.com"  # duplicate of the row before
        else:
            email = f"contact{i}@mail{i % 97}.example.com"
        line = (
            f"{email},Firstname{i % 1000},Lastname{i % 877},City {i % 211},"
            f"{'pro' if i % 3 else 'free'},signup form,2026-0{1 + i % 9}-1{i % 10}T10:00:00Z,"
            f"{'yes' if i % 2 else 'no'}\r\n"
        )
        buffer.append(line)
        size += len(line)
        if size >= CHUNK_SIZE:
            data = "".join(buffer).encode()
            yield data
            buffer, size = [], 0
    if buffer:
        yield "".join(buffer).encode()


def run(rows: int, *, trace_memory: bool) -> dict[str, float | int | None]:
    if trace_memory:
        tracemalloc.start()
    valid = invalid = 0
    bytes_read = 0
    started = time.perf_counter()
    for batch in import_csv(generated_csv(rows), batch_size=1000):
        valid += len(batch.rows)
        invalid = batch.progress.rows_invalid
        bytes_read = batch.progress.bytes_read
    elapsed = time.perf_counter() - started
    peak = None
    if trace_memory:
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
    print(f"rows: {rows:,} ({valid:,} valid, {invalid:,} with errors), {bytes_read / 1e6:.1f} MB")
    rate, mb_rate = rows / elapsed, bytes_read / 1e6 / elapsed
    print(f"time: {elapsed:.2f} s, {rate:,.0f} rows/s, {mb_rate:.1f} MB/s (generation included)")
    if peak is not None:
        print(f"peak traced memory: {peak:.1f} MB")
    return {
        "rows_per_s": round(rows / elapsed),
        "mb_per_s": round(bytes_read / 1e6 / elapsed, 1),
        "rows": rows,
        "peak_mb": round(peak, 1) if peak is not None else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--trace-memory", action="store_true")
    args = parser.parse_args()
    print(json.dumps(run(args.rows, trace_memory=args.trace_memory)))


if __name__ == "__main__":
    main()
