"""Classifier accuracy over the corpus of real bounces in tests/data/bounces (SOURCES.md says
where each came from and where each label did): reason (floors below), hard/soft >= 98 %,
recipients 100 %, over the whole corpus and over its blind-labelled part (labels written before
our classifier saw the files) alone. On failure the per-reason confusion and the misses are
printed."""

from __future__ import annotations

import collections
from pathlib import Path

from bounce.parse import parse_message

CORPUS = Path(__file__).parent.parent / "data" / "bounces"


def _expected(blind_only: bool = False) -> dict[str, list[tuple[str, str, str]]]:
    rows: dict[str, list[tuple[str, str, str]]] = collections.defaultdict(list)
    for line in (CORPUS / "expected.tsv").read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        file, recipient, reason, hard, provenance = line.split("\t")
        if blind_only and not provenance.startswith("blind"):
            continue
        rows[file].append((recipient, reason, hard))
    return rows


def _hard(value: bool | None) -> str:
    return "-" if value is None else "hard" if value else "soft"


def test_every_corpus_file_has_an_expectation() -> None:
    files = {
        f"{p.parent.name}/{p.name}" for p in CORPUS.glob("*/*.*") if p.suffix not in (".py", ".md")
    }
    assert files == set(_expected()), "expected.tsv and the corpus files differ"


# The labels of the generated bounces (local/) were written per case before any MTA ran. Exim
# and OpenSMTPD retry a 4xx and give up with "retry timeout exceeded" / "Envelope expired",
# which Sisimai's definition (and ours) calls expired, while the label names the deferral's
# cause (16 rows, kept as written and counted as misses: see SOURCES.md). Measured
# 2026-12-03: whole 92.9 %, blind 83.2 %; the floors sit just under.
WHOLE_REASON_MIN = 0.92
BLIND_REASON_MIN = 0.82


def test_corpus_accuracy() -> None:
    _assert_accuracy(_expected(), reason_min=WHOLE_REASON_MIN)


def test_blind_labelled_part_accuracy() -> None:
    expected = _expected(blind_only=True)
    assert len(expected) >= 100, "the blind-labelled part is the corpus' honest measure"
    _assert_accuracy(expected, reason_min=BLIND_REASON_MIN)


def _assert_accuracy(
    expected: dict[str, list[tuple[str, str, str]]], reason_min: float = 0.95
) -> None:
    total = reason_ok = hard_ok = recipients_scored = recipients_ok = 0
    confusion: collections.Counter[tuple[str, str]] = collections.Counter()
    misses: list[str] = []
    for file, rows in sorted(expected.items()):
        report = parse_message((CORPUS / file).read_bytes())
        got = {r.recipient: r for r in report.recipients}
        got.update({r.original_recipient: r for r in report.recipients if r.original_recipient})
        for recipient, reason, hard in rows:
            total += 1
            if recipient == "?":  # the message names nobody: score the first one's reason
                found = report.recipients[0] if report.recipients else None
            else:
                recipients_scored += 1
                found = got.get(recipient)
                if found is not None:
                    recipients_ok += 1
                else:
                    misses.append(f"{file}: recipient {recipient!r} not found in {list(got)}")
            got_reason = found.reason.value if found else "(none)"
            confusion[(reason, got_reason)] += 1
            if got_reason == reason:
                reason_ok += 1
            else:
                misses.append(f"{file}: {recipient} expected {reason}, got {got_reason}")
            if found is not None and _hard(found.hard) == hard:
                hard_ok += 1
    reason_rate, hard_rate = reason_ok / total, hard_ok / total
    recipient_rate = recipients_ok / recipients_scored
    print(
        f"\n{total} recipients: reason {reason_rate:.1%}, hard/soft {hard_rate:.1%}, "
        f"recipients {recipient_rate:.1%}"
    )
    if reason_rate < reason_min or hard_rate < 0.98 or recipient_rate < 1.0:
        print("confusion (expected -> got: count), mismatches only:")
        for (want, got_reason), n in sorted(confusion.items()):
            if want != got_reason:
                print(f"  {want:>16} -> {got_reason:<16} {n}")
        print("\n".join(misses))
    assert reason_rate >= reason_min
    assert hard_rate >= 0.98
    assert recipient_rate == 1.0
