"""Bounce parsing and classification speed on one core: the corpus in tests/data/bounces,
parsed over and over for a few seconds (after a warm-up that compiles the rules).

    .venv/bin/python bench/bounce_parse.py [SECONDS]

Prints the corpus size, the rate, and last a JSON line {"messages_per_s": N}.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from bounce.classify import default_classifier
from bounce.parse import parse_message

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "data" / "bounces"


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    messages = [p.read_bytes() for p in sorted(CORPUS.glob("*/*.*")) if p.suffix != ".py"]
    size = sum(map(len, messages))
    classifier = default_classifier()
    for raw in messages:  # warm-up
        parse_message(raw, classifier)
    done = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        for raw in messages:
            parse_message(raw, classifier)
        done += len(messages)
    elapsed = time.perf_counter() - start
    # CPU time of this process: the rate of one core even when other processes share it.
    cpu = time.process_time() - cpu_start
    rate = done / cpu
    print(f"corpus: {len(messages)} messages, {size / len(messages) / 1024:.1f} KiB average")
    print(f"parsed and classified {done} messages in {elapsed:.2f} s ({cpu:.2f} s of CPU)")
    print(f"wall-clock rate {done / elapsed:.0f}/s; per CPU second {rate:.0f}/s")
    print(json.dumps({"messages_per_s": round(rate)}))


if __name__ == "__main__":
    main()
