"""Every named query the code asks for exists, and is asked for by its full name: a typo in a
query name fails here instead of at the first request that takes that path, and `grep` finds
every use of a query."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from mta.queries import Queries

ROOT = Path(__file__).resolve().parent.parent.parent
PACKAGES = ("mta", "bounce", "tracker", "control")


def _queries_package(node: ast.expr) -> str | None:
    """'pkg' when `node` is the call `Queries("pkg")`."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "Queries"
        and len(node.args) == 1
        and isinstance(node.args[0], ast.Constant)
    ):
        return node.args[0].value
    return None


def _uses(path: Path) -> list[tuple[int, str, ast.expr]]:
    """(line, package, subscript key) of every lookup into a Queries object in `path`: through
    a name bound to `Queries("pkg")` anywhere in the module, or on the call itself."""
    tree = ast.parse(path.read_text(), str(path))
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            package = _queries_package(node.value)
            if package and isinstance(target, ast.Name):
                bound[target.id] = package
    uses = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Subscript):
            continue
        package = _queries_package(node.value)
        if package is None and isinstance(node.value, ast.Name):
            package = bound.get(node.value.id)
        if package is not None:
            uses.append((node.lineno, package, node.slice))
    return uses


def _modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_the_scan_sees_the_query_lookups() -> None:
    # The scan below must not pass by finding nothing: the mail path alone asks for dozens.
    assert sum(len(_uses(p)) for p in _modules()) > 100


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_query_a_module_asks_for_exists_and_is_named_in_full(path: Path) -> None:
    problems = []
    for line, package, key in _uses(path):
        if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
            problems.append(f"line {line}: query name is computed, write it out in full")
        elif key.value not in Queries(package):
            problems.append(f"line {line}: no query {key.value!r} in {package}/sql/")
    assert not problems, problems


@pytest.mark.parametrize("package", PACKAGES)
def test_every_query_file_says_what_it_holds(package: str) -> None:
    for path in sorted((ROOT / package / "sql").glob("*.sql")):
        first = path.read_text().lstrip().splitlines()[0]
        assert first.startswith("--") and "name:" not in first, f"{path}: header comment first"


def test_one_queries_object_per_package() -> None:
    assert Queries("mta") is Queries("mta")
    assert Queries("mta") is not Queries("control")
