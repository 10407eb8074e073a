"""Contact files generated on the fly, for the import tests and their subprocess measurements."""

from __future__ import annotations

from collections.abc import Iterator


def generated(rows: int, *, notes: int = 0) -> Iterator[bytes]:
    """A contact file generated 64 KiB at a time; every 100th row is faulty."""
    yield b"email,first_name,last_name,city,consent_at,double_opt_in,notes\r\n"
    note = "n" * notes
    for start in range(0, rows, 500):
        yield "".join(
            f"c{i}{'.' if i % 100 == 50 else '@'}mail{i % 97}.example.com,First{i % 1000},"
            f"Last{i % 877},City {i % 211},2026-01-0{1 + i % 9}T10:00:00Z,yes,{note}\r\n"
            for i in range(start, min(rows, start + 500))
        ).encode()
