"""Classifies a failure (RFC 3463 status, reply or bounce text, DSN action) into a `Reason`.

One engine for both paths, so they agree: the asynchronous bounces the processor reads and the
synchronous SMTP replies the MTA gets while delivering. The rules are data (bounce/rules.toml,
whose header explains the order of decisions); this module only compiles and applies them. No
I/O after construction: a `Classifier` is a pure function of its rules.
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from bounce.reasons import Reason

RULES_PATH = Path(__file__).with_name("rules.toml")

# RFC 3463 §2: class "." subject "." detail; the detail may have up to three digits.
STATUS_RE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
# An RFC 5321 reply code at the start of the text or after "said:"/"error:" and similar.
REPLY_CODE_RE = re.compile(r"(?:^|[\s:;(#])([245]\d\d)(?=[\s-]|$)")
_SPACE_RE = re.compile(r"\s+")
_FIRST_FAILED = ("4", "5")


class RulesError(ValueError):
    """The rules file is malformed."""


@dataclass(frozen=True, slots=True)
class Classification:
    reason: Reason
    hard: bool | None
    status: str  # the RFC 3463 code used ('' when none was given or found)


@dataclass(frozen=True, slots=True)
class _Rule:
    reason: Reason
    hard: bool
    stage: int
    match: re.Pattern[str] | None
    veto: re.Pattern[str] | None

    def matches(self, text: str) -> bool:
        if self.match is None or self.match.search(text) is None:
            return False
        return self.veto is None or self.veto.search(text) is None


def _alternation(phrases: list[str], patterns: list[str]) -> re.Pattern[str] | None:
    parts = [re.escape(p.lower()) for p in phrases]
    parts += [f"(?:{p})" for p in patterns]
    return re.compile("|".join(parts), re.X) if parts else None


def normalize(text: str) -> str:
    """Lower-cased with whitespace folded: how rules see a diagnostic."""
    return _SPACE_RE.sub(" ", text).strip().lower()


def find_status(text: str) -> str:
    """The first RFC 3463 code in `text` that says a failure or success, else ''."""
    m = STATUS_RE.search(text)
    return f"{m[1]}.{m[2]}.{m[3]}" if m else ""


def find_reply_code(text: str) -> int | None:
    m = REPLY_CODE_RE.search(text)
    return int(m[1]) if m else None


class Classifier:
    """Rules compiled once; `classify` is cheap (a few precompiled regex searches)."""

    def __init__(self, path: Path = RULES_PATH) -> None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            self._statuses = {k: Reason(v) for k, v in data["statuses"].items()}
            self._unless = frozenset(Reason(r) for r in data.get("userunknown_unless", []))
            self._rules = [
                _Rule(
                    Reason(r["name"]),
                    bool(r["hard"]),
                    int(r["stage"]),
                    _alternation(
                        r.get("phrases", []) + r.get("vendor_phrases", []), r.get("patterns", [])
                    ),
                    _alternation(r.get("not_phrases", []), []),
                )
                for r in data["reason"]
            ]
        except (KeyError, ValueError, TypeError, re.error, tomllib.TOMLDecodeError) as exc:
            raise RulesError(f"{path}: {exc}") from exc
        self._hard = {r.reason: r.hard for r in self._rules}
        self._by_reason = {r.reason: r for r in self._rules}

    def reason_of_text(self, text: str) -> Reason | None:
        """The first reason (stage 1, then stage 2) whose phrases match normalised `text`."""
        for rule in self._rules:
            if rule.matches(text):
                return rule.reason
        return None

    def classify(
        self, status: str = "", diagnostic: str = "", action: str = "", code: int | None = None
    ) -> Classification:
        """Classify one failed recipient. `status` may be empty: it is then looked for in the
        diagnostic. `code` is the SMTP reply code when known (it decides hard/soft for the
        reasons whose permanence depends on it)."""
        text = normalize(diagnostic)
        status = status.strip() or find_status(text)
        if code is None:
            code = find_reply_code(text)
        reason = self._decide(status, text, action.lower())
        return Classification(reason, self.is_hard(reason, status, code), status)

    def classify_reply(self, code: int, reply: str) -> Classification:
        """Classify an SMTP reply received while delivering (e.g. '550 5.1.1 No such user')."""
        return self.classify(find_status(reply), reply, "", code)

    def _decide(self, status: str, text: str, action: str) -> Reason:
        by_code = self._statuses.get(status)
        # Stage 1: text or code, the first reason in order wins.
        for rule in self._rules:
            if rule.stage != 1:
                continue
            if rule.matches(text):
                return rule.reason
            if by_code is rule.reason:
                if rule.reason is Reason.USERUNKNOWN and self._says_otherwise(text):
                    continue
                return rule.reason
        # Stage 2: text only.
        for rule in self._rules:
            if rule.stage == 2 and rule.matches(text):
                return rule.reason
        if by_code is not None:
            return by_code
        if status[2:4] == "6.":
            return Reason.CONTENTERROR
        if status[2:4] == "7.":
            return Reason.SECURITYERROR
        if action.startswith(("delayed", "expired")):
            return Reason.EXPIRED
        return Reason.ONHOLD if text else Reason.UNDEFINED

    def _says_otherwise(self, text: str) -> bool:
        return any(self._by_reason[r].matches(text) for r in self._unless if r in self._by_reason)

    def is_hard(self, reason: Reason, status: str = "", code: int | None = None) -> bool | None:
        """Permanent failure of the address? None for complaints and auto-replies."""
        if reason in (Reason.FEEDBACK, Reason.VACATION):
            return None
        if reason is Reason.NOTACCEPT:
            return not (status.startswith("4") or (code is not None and 400 <= code < 500))
        return self._hard.get(reason, False)


@functools.cache
def default_classifier() -> Classifier:
    """The classifier built from the shipped rules file (compiled once per process)."""
    return Classifier()
