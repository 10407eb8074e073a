"""Agreement of Sendmill's bounce classifier with Sisimai 4.25 over a corpus of bounces (issue 19).

    .venv/bin/python bench/bounce_agreement.py [FOLDER] [--labels expected.tsv] [--show N]

Runs the reference (bench/sisimai_reference.pl: Debian's libsisimai-perl, a measuring
instrument only, never a dependency of Sendmill) and our parser over every message file under
FOLDER (default tests/data/bounces), and prints, for the whole corpus and for its blind-labelled
part (the files whose rows in the labels file were written before our classifier was run on
them, provenance `blind-...`):

- recipient recall: of the failed recipients Sisimai reports, the share we report too;
- reason agreement: of those, the share with the same reason, Sisimai 5's finer reasons
  (requireptr, badreputation, authfailure) counting as agreeing with 4.25's blocked or
  policyviolation;
- hard/soft agreement: of those, the share with the same permanence;
- extra records: failed recipients we report and Sisimai does not;
- the confusion pairs (Sisimai's reason -> ours) and the misses.

The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bounce.parse import parse_message
from bounce.reasons import ReportKind

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "bounces"
REFERENCE = Path(__file__).resolve().with_name("sisimai_reference.pl")
NOT_MESSAGES = frozenset({".py", ".md", ".tsv", ".pl", ".json"})
# Sisimai 5 split these out of 4.25's blocked / policyviolation: the same verdict, finer.
FINER = {
    "requireptr": {"blocked", "policyviolation"},
    "badreputation": {"blocked", "policyviolation"},
    "authfailure": {"blocked", "policyviolation"},
}


@dataclass(slots=True)
class Record:
    recipient: str
    reason: str
    hard: str  # hard | soft | -
    also: str = ""  # the Original-Recipient, when it differs: the same record


@dataclass
class Score:
    reference: int = 0
    found: int = 0
    reason_ok: int = 0
    hard_ok: int = 0
    extra: int = 0
    confusion: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    misses: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, float | int]:
        return {
            "references": self.reference,
            "recall": round(self.found / self.reference, 4) if self.reference else 0.0,
            "reason": round(self.reason_ok / self.found, 4) if self.found else 0.0,
            "hard_soft": round(self.hard_ok / self.found, 4) if self.found else 0.0,
            "extra": self.extra,
        }


def agrees(reference: str, ours: str) -> bool:
    return reference == ours or reference in FINER.get(ours, ())


def sisimai(files: list[Path]) -> dict[Path, list[Record]]:
    """Sisimai's records per file (files it reports nothing for are absent)."""
    out = subprocess.run(
        ["perl", str(REFERENCE), *map(str, files)], capture_output=True, check=True, text=True
    ).stdout
    records: dict[Path, list[Record]] = collections.defaultdict(list)
    for line in out.splitlines():
        path, recipient, reason, soft = line.split("\t")[:4]
        hard = {"0": "hard", "1": "soft"}.get(soft, "-")
        records[Path(path)].append(Record(recipient, reason, hard))
    return records


def ours(raw: bytes) -> list[Record]:
    report = parse_message(raw)
    if report.kind in (ReportKind.VACATION, ReportKind.UNREADABLE):
        return []  # not a bounce: nothing to report (Sisimai leaves auto-replies out too)
    hard = {True: "hard", False: "soft", None: "-"}
    out = []
    for r in report.recipients:
        if r.action in ("delivered", "relayed", "expanded"):
            continue
        out.append(Record(r.recipient, r.reason.value, hard[r.hard], r.original_recipient))
    return out


def blind_files(labels: Path, folder: Path) -> set[Path]:
    """Files whose labels were written before our classifier saw them (provenance blind-*)."""
    blind = set()
    if not labels.exists():
        return blind
    for line in labels.read_text(encoding="utf-8").splitlines():
        cells = line.split("\t")
        if line.startswith("#") or len(cells) < 5:
            continue
        if cells[4].startswith("blind"):
            blind.add((labels.parent / cells[0]).resolve())
    return {p for p in blind if p.is_relative_to(folder.resolve())}


def score(files: list[Path], reference: dict[Path, list[Record]], root: Path) -> Score:
    s = Score()
    for path in files:
        mine = ours(path.read_bytes())
        by_recipient = {r.also: r for r in mine if r.also}
        by_recipient.update({r.recipient: r for r in mine})
        theirs = reference.get(path, [])
        name = str(path.relative_to(root))
        for t in theirs:
            if not t.recipient:
                continue
            s.reference += 1
            got = by_recipient.get(t.recipient)
            if got is None:
                s.confusion[(t.reason, "(missed)")] += 1
                s.misses.append(f"{name}: missed {t.recipient} ({t.reason})")
                continue
            s.found += 1
            if agrees(t.reason, got.reason):
                s.reason_ok += 1
            else:
                s.confusion[(t.reason, got.reason)] += 1
                s.misses.append(f"{name}: {t.recipient} Sisimai {t.reason}, ours {got.reason}")
            if t.hard == got.hard:
                s.hard_ok += 1
        known = {t.recipient for t in theirs}
        for r in mine:
            if r.recipient not in known and r.also not in known:
                s.extra += 1
                s.misses.append(f"{name}: extra {r.recipient or '(nobody)'} ({r.reason})")
    return s


def show(title: str, s: Score, n: int) -> None:
    f = s.figures()
    print(
        f"{title}: {s.reference} Sisimai records; recall {f['recall']:.1%}, "
        f"reason {f['reason']:.1%}, hard/soft {f['hard_soft']:.1%}, extra {s.extra}"
    )
    for (want, got), count in s.confusion.most_common():
        print(f"  {want:>16} -> {got:<16} {count}")
    for line in s.misses[:n]:
        print(f"    {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=CORPUS)
    parser.add_argument("--labels", type=Path, default=CORPUS / "expected.tsv")
    parser.add_argument("--show", type=int, default=40, help="misses listed per part")
    args = parser.parse_args()
    folder = args.folder.resolve()
    files = sorted(
        p.resolve()
        for p in folder.rglob("*")
        if p.is_file() and p.suffix not in NOT_MESSAGES and p.name != "README"
    )
    reference = sisimai(files)
    blind = blind_files(args.labels, folder)
    whole = score(files, reference, folder)
    part = score([p for p in files if p in blind], reference, folder)
    print(f"{len(files)} messages in {folder}, {len(blind)} blind-labelled")
    show("whole corpus", whole, args.show)
    show("blind part", part, args.show)
    print(json.dumps({"files": len(files), "all": whole.figures(), "blind": part.figures()}))


if __name__ == "__main__":
    main()
