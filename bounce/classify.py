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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bounce.reasons import Reason

RULES_PATH = Path(__file__).with_name("rules.toml")
RECEIVERS_PATH = Path(__file__).with_name("remote_hosts.toml")

# RFC 3463 §2: class "." subject "." detail; the detail may have up to three digits.
STATUS_RE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
# An RFC 5321 reply code at the start of the text or after "said:"/"error:" and similar.
REPLY_CODE_RE = re.compile(r"(?:^|[\s:;(#])([245]\d\d)(?=[\s-]|$)")
_SPACE_RE = re.compile(r"\s+")
# Replies and the sentences around an address are short; long prose is mostly boilerplate,
# and the cost of the rules grows with the length of the text.
_MAX_TEXT = 1200


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
    pattern: re.Pattern[str] | None  # the rule's regular expressions (phrases are indexed)
    veto: tuple[str, ...]

    def matches(self, text: str, by_phrase: frozenset[int], index: int) -> bool:
        hit = index in by_phrase or (self.pattern is not None and self.pattern.search(text))
        return bool(hit) and not any(v in text for v in self.veto)


_WORD_RE = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True, slots=True)
class Receiver:
    """A big mailbox provider whose own replies say exactly what they mean (remote_hosts.toml)."""

    name: str
    hosts: tuple[str, ...]  # the remote MTA's name ends with one
    domains: frozenset[str]  # or, with no remote host named, the recipient's domain is one
    phrases: tuple[tuple[str, Reason], ...]
    statuses: dict[str, Reason]

    def serves(self, host: str) -> bool:
        return any(host == h or host.endswith("." + h) for h in self.hosts)

    def reason(self, status: str, text: str) -> Reason | None:
        for phrase, reason in self.phrases:
            if phrase in text:
                return reason
        return self.statuses.get(status)


def load_receivers(path: Path = RECEIVERS_PATH) -> tuple[Receiver, ...]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return tuple(
            Receiver(
                h["name"],
                tuple(x.lower() for x in h["hosts"]),
                frozenset(x.lower() for x in h.get("domains", [])),
                tuple(
                    (_SPACE_RE.sub(" ", phrase.lower()), Reason(reason))
                    for reason, phrases in h.get("reasons", {}).items()
                    for phrase in phrases
                ),
                {k: Reason(v) for k, v in h.get("statuses", {}).items()},
            )
            for h in data["host"]
        )
    except (KeyError, ValueError, TypeError, tomllib.TOMLDecodeError) as exc:
        raise RulesError(f"{path}: {exc}") from exc


class _PhraseIndex:
    """Literal phrases looked up by one of their words, then checked with `in`: a few set
    lookups and substring tests instead of hundreds of regex alternatives per text. A phrase
    may be a vendor's (an MTA's own wording): those are reported apart as well."""

    def __init__(self) -> None:
        self._by_word: dict[str, list[tuple[int, str, bool]]] = {}
        self._always: list[tuple[int, str, bool]] = []

    def add(self, rule: int, phrase: str, vendor: bool = False) -> None:
        words = _WORD_RE.findall(phrase)
        # Edge words may be cut mid-word ("s mail servers"); interior ones are whole.
        inner = words[1:-1] if len(words) > 2 else words
        if not inner:
            self._always.append((rule, phrase, vendor))
            return
        key = max(inner, key=len)
        self._by_word.setdefault(key, []).append((rule, phrase, vendor))

    def rules_matching(self, text: str) -> tuple[frozenset[int], frozenset[int]]:
        """The rules with a phrase in `text`, and those with a vendor phrase in it."""
        found: set[int] = set()
        by_vendor: set[int] = set()
        candidates = [self._always]
        candidates.extend(
            self._by_word[w] for w in set(_WORD_RE.findall(text)) if w in self._by_word
        )
        for entries in candidates:
            for rule, phrase, vendor in entries:
                if (rule in by_vendor if vendor else rule in found) or phrase not in text:
                    continue
                found.add(rule)
                if vendor:
                    by_vendor.add(rule)
        return frozenset(found), frozenset(by_vendor)


def normalize(text: str) -> str:
    """Lower-cased with whitespace folded: how rules see a diagnostic."""
    return _SPACE_RE.sub(" ", text).strip().lower()


def find_status(text: str) -> str:
    """The first RFC 3463 code in `text` that says a failure or success, else ''."""
    m = STATUS_RE.search(text)
    return f"{m[1]}.{m[2]}.{m[3]}" if m else ""


def _more_specific(status: str, found: str) -> str:
    if not found or found.endswith(".0.0"):
        return status or found
    if status and status[0] != found[0]:
        return status  # a 4.x.x in the text of a permanent failure: the DSN's class stands
    return found


def find_reply_code(text: str) -> int | None:
    m = REPLY_CODE_RE.search(text)
    return int(m[1]) if m else None


class Classifier:
    """Rules compiled once; `classify` is cheap (a few precompiled regex searches)."""

    def __init__(self, path: Path = RULES_PATH, receivers: Path = RECEIVERS_PATH) -> None:
        self._receivers = load_receivers(receivers)
        self._receiver_of: dict[tuple[str, str], Receiver | None] = {}  # a cache
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            self._statuses = {k: Reason(v) for k, v in data["statuses"].items()}
            self._unless = frozenset(Reason(r) for r in data.get("userunknown_unless", []))
            self._vague = frozenset(Reason(r) for r in data.get("vague_statuses", []))
            self._commands = {k.lower(): str(v) for k, v in data.get("commands", {}).items()}
            self._at_command, self._at_command_always = (
                {
                    Reason(reason): {command: Reason(r) for command, r in by_command.items()}
                    for reason, by_command in data.get(table, {}).items()
                }
                for table in ("at_command", "at_command_always")
            )
            self._command_matters = frozenset(self._at_command) | frozenset(self._at_command_always)
            self._phrases = _PhraseIndex()
            self._rules: list[_Rule] = []
            for i, r in enumerate(data["reason"]):
                patterns = r.get("patterns", [])
                for phrase in r.get("phrases", []):
                    self._phrases.add(i, _SPACE_RE.sub(" ", phrase.lower()))
                for phrase in r.get("vendor_phrases", []):
                    self._phrases.add(i, _SPACE_RE.sub(" ", phrase.lower()), vendor=True)
                self._rules.append(
                    _Rule(
                        Reason(r["name"]),
                        bool(r["hard"]),
                        int(r["stage"]),
                        re.compile("|".join(f"(?:{p})" for p in patterns), re.X)
                        if patterns
                        else None,
                        tuple(v.lower() for v in r.get("not_phrases", [])),
                    )
                )
        except (KeyError, ValueError, TypeError, re.error, tomllib.TOMLDecodeError) as exc:
            raise RulesError(f"{path}: {exc}") from exc
        self._hard = {r.reason: r.hard for r in self._rules}
        self._position = {r.reason: i for i, r in enumerate(self._rules)}

    def reason_of_text(self, text: str) -> Reason | None:
        """The first reason (stage 1, then stage 2) whose phrases match `text`."""
        text = normalize(text)
        by_phrase, _ = self._phrases.rules_matching(text)
        for i, rule in enumerate(self._rules):
            if rule.matches(text, by_phrase, i):
                return rule.reason
        return None

    def receiver(self, remote_host: str, domain: str = "") -> Receiver | None:
        """The big receiver behind the remote MTA, else behind the recipient's domain."""
        key = (remote_host, domain)
        found = self._receiver_of.get(key, False)
        if found is False:  # not looked up yet (threads may race here: same answer)
            if len(self._receiver_of) > 10_000:  # bounded: hosts and domains are many
                self._receiver_of.clear()
            found = self._receiver_of[key] = self._find_receiver(remote_host, domain)
        return found

    def _find_receiver(self, remote_host: str, domain: str) -> Receiver | None:
        host = remote_host.lower().strip(".")
        if any(c.isalpha() for c in host):  # a name, not an IP address
            return next((r for r in self._receivers if r.serves(host)), None)
        domain = domain.lower()
        return next((r for r in self._receivers if domain in r.domains), None) if domain else None

    def command_of(self, text: str, near: int = -1) -> str:
        """The SMTP command (CONN, HELO, MAIL, RCPT, DATA) a failure answered, from the words
        around the reply in `text` (already lower case); the mention nearest the position
        `near` (the failed address) wins, else the first. '' when the text does not say."""
        best, distance = "", len(text) + 1
        for phrase, command in self._commands.items():
            at = text.find(phrase)
            if at < 0:
                continue
            d = abs(at - near) if near >= 0 else at
            if d < distance:
                best, distance = command, d
        return best

    def classify(
        self,
        status: str = "",
        diagnostic: str = "",
        action: str = "",
        code: int | None = None,
        command: str | Callable[[], str] | None = None,
        remote_host: str = "",
        domain: str = "",
    ) -> Classification:
        """Classify one failed recipient. `status` may be empty: it is then looked for in the
        diagnostic. `code` is the SMTP reply code when known (it decides hard/soft for the
        reasons whose permanence depends on it). `command` is the SMTP command the failure
        answered ('' when the report does not say; None when the caller cannot know, which
        leaves the phrases their plain meaning), or a function finding it, called only when the
        command can change the verdict. `remote_host` (the MTA that refused) or else the
        recipient's `domain` selects a big receiver's own rules (remote_hosts.toml)."""
        text = normalize(diagnostic[:_MAX_TEXT])
        status = status.strip()
        if not status or status.endswith(".0.0"):
            # "Status: 5.0.0" says less than the "550 5.1.1" the remote server gave
            status = _more_specific(status, find_status(text))
        if code is None:
            code = find_reply_code(text)
        receiver = self.receiver(remote_host, domain)
        by_receiver = receiver.reason(status, text) if receiver is not None else None
        if by_receiver is not None:
            reason, by_words = by_receiver, False
        else:
            reason, by_words = self._decide(status, text, action.lower())
        if command is not None and reason in self._command_matters:
            # the command is only looked for when it can change the verdict
            smtp_command = command() if callable(command) else command
            if by_words:
                reason = self._at_command.get(reason, {}).get(smtp_command, reason)
            reason = self._at_command_always.get(reason, {}).get(smtp_command, reason)
        return Classification(reason, self.is_hard(reason, status, code), status)

    def classify_reply(self, code: int, reply: str, command: str | None = None) -> Classification:
        """Classify an SMTP reply received while delivering (e.g. '550 5.1.1 No such user')."""
        return self.classify(find_status(reply), reply, "", code, command)

    def _decide(self, status: str, text: str, action: str) -> tuple[Reason, bool]:
        """The reason, and whether a generic phrase (not a vendor's wording, not the Status
        code) decided it: only such a verdict depends on the SMTP command."""
        by_code = self._statuses.get(status)
        # A particular MTA's own wording says exactly what it meant: it decides first.
        by_phrase, by_vendor = self._phrases.rules_matching(text)
        for i in sorted(by_vendor):  # a rule's not_phrases veto its vendor phrases too
            if not any(v in text for v in self._rules[i].veto):
                return self._rules[i].reason, False
        # Stage 1: text or code, the first reason in order wins.
        for i, rule in enumerate(self._rules):
            if rule.stage != 1:
                continue
            if rule.matches(text, by_phrase, i):
                return rule.reason, by_code is not rule.reason
            if by_code is rule.reason:
                if rule.reason is Reason.USERUNKNOWN and self._says_otherwise(text, by_phrase):
                    continue
                return rule.reason, False
        if by_code is not None and by_code not in self._vague:
            return by_code, False  # a code that names a precise reason beats stage-2 words
        # Stage 2: text only.
        for i, rule in enumerate(self._rules):
            if rule.stage == 2 and rule.matches(text, by_phrase, i):
                return rule.reason, True
        if by_code is not None:
            return by_code, False
        if status[2:4] == "6.":
            return Reason.CONTENTERROR, False
        if status[2:4] == "7.":
            return Reason.SECURITYERROR, False
        if action.startswith(("delayed", "expired")):
            return Reason.EXPIRED, False
        return (Reason.ONHOLD, True) if text else (Reason.UNDEFINED, False)

    def _says_otherwise(self, text: str, by_phrase: frozenset[int]) -> bool:
        return any(
            self._rules[self._position[r]].matches(text, by_phrase, self._position[r])
            for r in self._unless
            if r in self._position
        )

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
