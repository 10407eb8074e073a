"""Built-in spam scoring: rules as data (`spam_rules.toml`), this module only evaluates them.

Used by the content checks when no SpamAssassin spamd is configured or it does not answer. The
score is the sum of the rules a message hits, each hit carrying the rule's explanation and the
evidence that triggered it (the phrase, the link, the measured value), so an author sees why.

    rules = SpamRules.load()                      # the packaged rule file
    verdict = rules.evaluate(SpamInput(subject=..., body_text=..., links=..., ...))
    verdict.score, verdict.hits                   # 3.1, (SpamHit("URL_SHORTENER", 1.5, ...), ...)

The rule file format is documented at the top of `spam_rules.toml`; `SpamRules.from_toml()`
refuses a file with an unknown key, an unknown measure, a bad regex or a missing score.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "SPAM_THRESHOLD",
    "SpamHit",
    "SpamInput",
    "SpamRule",
    "SpamRules",
    "SpamRulesError",
    "SpamVerdict",
]

#: Scores above this are refused (blueprint §6.2; SpamAssassin's default `required_score`).
SPAM_THRESHOLD = 5.0

_RULES_FILE = "spam_rules.toml"
_MATCHERS = ("subject_pattern", "body_pattern", "phrases", "link_hosts", "test")
_KEYS = frozenset({*_MATCHERS, "score", "description", "min", "case_sensitive"})


class SpamRulesError(ValueError):
    """A rule file that is not valid."""


@dataclass(frozen=True, slots=True)
class SpamInput:
    """What the rules look at; the content checks build it from the parsed message."""

    subject: str
    body_text: str  # visible HTML text and the text part, as the reader sees them
    links: Sequence[tuple[str, str]] = ()  # (href, visible text)
    image_count: int = 0
    has_html: bool = True
    has_text_part: bool = True


@dataclass(frozen=True, slots=True)
class SpamHit:
    rule: str
    score: float
    description: str
    evidence: str = ""  # what matched: a phrase, a link, a measured value


@dataclass(frozen=True, slots=True)
class SpamVerdict:
    score: float
    hits: tuple[SpamHit, ...]
    threshold: float = SPAM_THRESHOLD
    source: str = "builtin"  # "builtin" or "spamd"

    @property
    def is_spam(self) -> bool:
        return self.score > self.threshold


@dataclass(frozen=True, slots=True)
class SpamRule:
    id: str
    score: float
    description: str
    match: Callable[[SpamInput], str | None] = field(repr=False)  # evidence, or None: no hit


# --- measures ------------------------------------------------------------------------------------

# Link text that shows an address: a scheme or "www." in front, or a path behind, so that words
# such as "Node.js" or "ASP.NET" are not taken for domains.
_URLISH = re.compile(
    r"(?:https?://|www\.)((?:[a-z0-9-]+\.)+[a-z]{2,})(?:[/:?#]\S*)?"
    r"|((?:[a-z0-9-]+\.)+[a-z]{2,})[/:?#]\S*",
    re.IGNORECASE,
)
_DOLLARS = re.compile(r"\$\s?\d")


def _caps_ratio(text: str, minimum_letters: int) -> float:
    letters = [c for c in text if c.isalpha()]
    if len(letters) < minimum_letters:
        return 0.0
    return sum(c.isupper() for c in letters) / len(letters)


def _host(href: str) -> str:
    try:
        return (urlsplit(href.strip()).hostname or "").lower()
    except ValueError:
        return ""


def _registered(host: str) -> str:
    """Last two labels: enough to tell `bank.example` from `evil.example` for a link text check."""
    return ".".join(host.rsplit(".", 2)[-2:])


def _link_text_mismatch(message: SpamInput) -> str | None:
    for href, text in message.links:
        shown = _URLISH.fullmatch(text.strip())
        target = _host(href)
        if not shown or not target:
            continue
        shown_host = (shown.group(1) or shown.group(2)).lower()
        if _registered(shown_host) != _registered(target):
            return f"link text {text.strip()!r} goes to {target}"
    return None


def _link_to_ip(message: SpamInput) -> str | None:
    for href, _ in message.links:
        host = _host(href)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            continue
        return href
    return None


# Each measure: (value of the message, evidence text). A rule hits when value >= min.
_MEASURES: Mapping[str, Callable[[SpamInput], float]] = {
    "subject_caps_ratio": lambda m: _caps_ratio(m.subject, 8),
    "body_caps_ratio": lambda m: _caps_ratio(m.body_text, 200),
    "body_exclamations": lambda m: float(m.body_text.count("!")),
    "dollar_amounts": lambda m: float(len(_DOLLARS.findall(m.body_text))),
}
_FLAGS: Mapping[str, Callable[[SpamInput], str | None]] = {
    "missing_text_part": lambda m: "no text/plain part" if not m.has_text_part else None,
    "link_text_mismatch": _link_text_mismatch,
    "link_to_ip": _link_to_ip,
    "empty_subject": lambda m: "empty subject" if not m.subject.strip() else None,
}


def _image_only(minimum: float) -> Callable[[SpamInput], str | None]:
    def match(m: SpamInput) -> str | None:
        chars = len(m.body_text.strip())
        if m.has_html and m.image_count and chars < minimum:
            return f"{m.image_count} image(s), {chars} characters of text"
        return None

    return match


# --- the rule set --------------------------------------------------------------------------------


class SpamRules:
    """A loaded, validated rule set."""

    def __init__(self, rules: Sequence[SpamRule]) -> None:
        self.rules = tuple(rules)

    @classmethod
    def load(cls) -> SpamRules:
        """The rules packaged with Sendmill (`control/spam_rules.toml`)."""
        text = resources.files("control").joinpath(_RULES_FILE).read_text(encoding="utf-8")
        return cls.from_toml(text)

    @classmethod
    def from_toml(cls, text: str) -> SpamRules:
        """Parse and validate a rule file; raises `SpamRulesError` naming the faulty rule."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SpamRulesError(f"spam rules are not valid TOML: {exc}") from exc
        unknown = set(data) - {"rules"}
        if unknown or not isinstance(data.get("rules"), dict):
            raise SpamRulesError("a spam rule file has one [rules.ID] table per rule, nothing else")
        return cls([_build_rule(rule_id, spec) for rule_id, spec in data["rules"].items()])

    def evaluate(self, message: SpamInput) -> SpamVerdict:
        """Score `message`: every rule that hits, with its evidence."""
        hits = []
        for rule in self.rules:
            evidence = rule.match(message)
            if evidence is not None:
                hits.append(SpamHit(rule.id, rule.score, rule.description, evidence))
        score = round(sum(h.score for h in hits), 2)
        return SpamVerdict(score=score, hits=tuple(hits))


def _build_rule(rule_id: str, spec: Any) -> SpamRule:
    if not isinstance(spec, dict):
        raise SpamRulesError(f"rule {rule_id}: must be a table")
    unknown = sorted(set(spec) - _KEYS)
    if unknown:
        raise SpamRulesError(f"rule {rule_id}: unknown key(s) {', '.join(unknown)}")
    score = spec.get("score")
    if isinstance(score, bool) or not isinstance(score, int | float):
        raise SpamRulesError(f"rule {rule_id}: needs a numeric score")
    description = spec.get("description")
    if not isinstance(description, str) or not description.strip():
        raise SpamRulesError(f"rule {rule_id}: needs a description")
    matchers = [k for k in _MATCHERS if k in spec]
    if len(matchers) != 1:
        raise SpamRulesError(f"rule {rule_id}: needs exactly one of {', '.join(_MATCHERS)}")
    try:
        match = _build_matcher(matchers[0], spec)
    except re.error as exc:
        raise SpamRulesError(f"rule {rule_id}: bad pattern: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise SpamRulesError(f"rule {rule_id}: {exc}") from exc
    return SpamRule(id=rule_id, score=float(score), description=description.strip(), match=match)


def _build_matcher(kind: str, spec: dict[str, Any]) -> Callable[[SpamInput], str | None]:
    flags = 0 if spec.get("case_sensitive") else re.IGNORECASE
    value = spec[kind]
    if kind in ("subject_pattern", "body_pattern"):
        if not isinstance(value, str):
            raise TypeError(f"{kind} must be a string")
        pattern = re.compile(value, flags)
        field_name = "subject" if kind == "subject_pattern" else "body_text"

        def search(m: SpamInput) -> str | None:
            found = pattern.search(getattr(m, field_name))
            return found.group(0) if found else None

        return search
    if kind == "phrases":
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(p, str) and p for p in value)
        ):
            raise TypeError("phrases must be a non-empty list of non-empty strings")
        alternatives = "|".join(re.escape(p) for p in value)
        phrase = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)

        def any_phrase(m: SpamInput) -> str | None:
            found = phrase.search(m.subject) or phrase.search(m.body_text)
            return found.group(0) if found else None

        return any_phrase
    if kind == "link_hosts":
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(h, str) and h for h in value)
        ):
            raise TypeError("link_hosts must be a non-empty list of host names")
        hosts = tuple(h.lower() for h in value)

        def to_host(m: SpamInput) -> str | None:
            for href, _ in m.links:
                host = _host(href)
                if host and any(host == h or host.endswith("." + h) for h in hosts):
                    return href
            return None

        return to_host
    # kind == "test"
    if value in _FLAGS:
        return _FLAGS[value]
    minimum = spec.get("min")
    if value == "image_only" or value in _MEASURES:
        if isinstance(minimum, bool) or not isinstance(minimum, int | float):
            raise ValueError(f"test {value} needs a numeric min")
        if value == "image_only":
            return _image_only(minimum)
        measure = _MEASURES[value]

        def at_least(m: SpamInput) -> str | None:
            measured = measure(m)
            return f"{value} = {measured:g} (limit {minimum:g})" if measured >= minimum else None

        return at_least
    raise ValueError(f"unknown test {value!r}")
