"""Named SQL queries, listmonk style: each package keeps its SQL in `.sql` files where every
query starts with a `-- name: some-query` header; code calls queries by name.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import ClassVar

_HEADER = re.compile(r"^--\s*name:\s*([a-z0-9-]+)\s*$", re.MULTILINE)


class Queries:
    """The queries of one package's `sql/` folder, looked up as `q["claim-due-recipients"]`.
    One object per package: every `Queries("mta")` is the same, read once.
    tests/mta/test_queries.py checks that every name the code asks for exists."""

    _loaded: ClassVar[dict[str, Queries]] = {}

    def __new__(cls, package: str) -> Queries:
        if package not in cls._loaded:
            queries = super().__new__(cls)
            queries._read(package)
            cls._loaded[package] = queries
        return cls._loaded[package]

    def _read(self, package: str) -> None:
        self._sql: dict[str, str] = {}
        folder = resources.files(package) / "sql"
        for f in sorted(folder.iterdir(), key=lambda f: f.name):
            if f.name.endswith(".sql"):
                self._load(f.read_text(), f.name)

    def _load(self, text: str, source: str) -> None:
        parts = _HEADER.split(text)
        for i in range(1, len(parts), 2):
            name, body = parts[i], parts[i + 1].strip()
            if name in self._sql:
                raise ValueError(f"{source}: query {name!r} defined twice")
            self._sql[name] = body

    def __getitem__(self, name: str) -> str:
        return self._sql[name]

    def __contains__(self, name: str) -> bool:
        return name in self._sql
