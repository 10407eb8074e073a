"""Machine detection: was an open or click made by a person, or by software acting on mail?

The rules are data (`machine_rules.toml`, documented there and in the README): image proxies
that fetch every pixel at delivery (Apple Mail Privacy Protection), prefetchers, and security
scanners that follow every link seconds after delivery. `MachineRules.classify` is pure: no
I/O, and its answers for a User-Agent are cached because a campaign's traffic repeats a few
hundred User-Agent strings millions of times.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_KINDS = frozenset({"open", "click"})
_RULE_KEYS = frozenset(
    {"reason", "kinds", "user_agent", "user_agent_is", "networks", "headers", "within_seconds"}
)
_CACHE_MAX = 65536  # entries per cache; cleared when full


class RulesError(ValueError):
    """The rules file is invalid; the message names the rule and key."""


class Request(NamedTuple):
    """What classification looks at, taken from the HTTP request and the token (a NamedTuple:
    one is built per pixel or click request)."""

    kind: str  # "open" | "click"
    user_agent: str
    ip: str | None
    headers: Mapping[str, str]  # lower-case names
    seconds_since_sent: float | None  # None when the token has no sent time


@dataclass(frozen=True, slots=True)
class Rule:
    reason: str
    kinds: frozenset[str]
    user_agent: re.Pattern[str] | None = None
    user_agent_is: frozenset[str] | None = None
    networks: tuple[IpNetwork, ...] = ()
    headers: tuple[tuple[str, re.Pattern[str]], ...] = ()
    within_seconds: float | None = None

    @property
    def depends_on_user_agent_only(self) -> bool:
        return not (self.networks or self.headers or self.within_seconds is not None)

    def matches_user_agent(self, user_agent: str) -> bool:
        if self.user_agent_is is not None and user_agent.strip() not in self.user_agent_is:
            return False
        return self.user_agent is None or self.user_agent.search(user_agent) is not None


class MachineRules:
    """An ordered list of rules; the first that matches gives the reason.

    `classify` runs on every pixel and click request, so what can be cached is: per
    (kind, User-Agent), the first rule decided by the User-Agent alone and the other rules
    whose User-Agent condition holds; per client address, the rules whose networks contain it.
    What is left per request is a few integer and dictionary checks.
    """

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules
        self._conditional = [i for i, r in enumerate(rules) if not r.depends_on_user_agent_only]
        self._network_rules = [i for i, r in enumerate(rules) if r.networks]
        self._header_names = frozenset(name for r in rules for name, _ in r.headers)
        self._ua_cache: dict[tuple[str, str], tuple[int, frozenset[int]]] = {}
        self._ip_cache: dict[str | None, frozenset[int]] = {}

    @classmethod
    def load(cls, path: str | Path | None = None) -> MachineRules:
        """The rules of `path`, or the shipped `tracker/machine_rules.toml`."""
        if path is None:
            text = (resources.files("tracker") / "machine_rules.toml").read_text()
            where = "machine_rules.toml"
        else:
            text, where = Path(path).read_text(), str(path)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise RulesError(f"{where}: {exc}") from None
        unknown = set(data) - {"rule"}
        if unknown:
            raise RulesError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        return cls([_rule(spec, f"{where} rule {i + 1}") for i, spec in enumerate(data["rule"])])

    def classify(self, request: Request) -> str | None:
        """The reason this request is a machine's, or None for a (presumed) person."""
        first_ua_match, ua_passes = self._by_user_agent(request.kind, request.user_agent)
        has_headers = not self._header_names.isdisjoint(request.headers)
        in_networks: frozenset[int] | None = None
        for index in self._conditional:
            if index > first_ua_match:
                break
            if index not in ua_passes:
                continue
            rule = self.rules[index]
            if rule.headers:
                if not has_headers:
                    continue
                if not all(
                    (value := request.headers.get(name)) is not None and pattern.search(value)
                    for name, pattern in rule.headers
                ):
                    continue
            if rule.networks:
                if in_networks is None:
                    in_networks = self._by_address(request.ip)
                if index not in in_networks:
                    continue
            if rule.within_seconds is not None:
                since = request.seconds_since_sent
                if since is None or since > rule.within_seconds:
                    continue
            return rule.reason
        if first_ua_match < len(self.rules):
            return self.rules[first_ua_match].reason
        return None

    def _by_user_agent(self, kind: str, user_agent: str) -> tuple[int, frozenset[int]]:
        """The first rule decided by this User-Agent alone (len(rules) if none), and the
        conditional rules for `kind` whose User-Agent condition it meets."""
        key = (kind, user_agent)
        hit = self._ua_cache.get(key)
        if hit is None:
            first = next(
                (
                    i
                    for i, rule in enumerate(self.rules)
                    if rule.depends_on_user_agent_only
                    and kind in rule.kinds
                    and rule.matches_user_agent(user_agent)
                ),
                len(self.rules),
            )
            passes = frozenset(
                i
                for i in self._conditional
                if kind in self.rules[i].kinds and self.rules[i].matches_user_agent(user_agent)
            )
            hit = (first, passes)
            if len(self._ua_cache) >= _CACHE_MAX:
                self._ua_cache.clear()
            self._ua_cache[key] = hit
        return hit

    def _by_address(self, ip: str | None) -> frozenset[int]:
        hit = self._ip_cache.get(ip)
        if hit is None:
            address = _address(ip)
            hit = frozenset(
                i
                for i in self._network_rules
                if address is not None and any(address in n for n in self.rules[i].networks)
            )
            if len(self._ip_cache) >= _CACHE_MAX:
                self._ip_cache.clear()
            self._ip_cache[ip] = hit
        return hit


def _address(ip: str | None) -> ipaddress._BaseAddress | None:
    if not ip:
        return None
    try:
        return ipaddress.ip_address(ip)
    except ValueError:
        return None


def _rule(spec: Any, where: str) -> Rule:
    if not isinstance(spec, dict):
        raise RulesError(f"{where}: expected a table")
    unknown = set(spec) - _RULE_KEYS
    if unknown:
        raise RulesError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    reason = spec.get("reason")
    if not isinstance(reason, str) or not reason:
        raise RulesError(f"{where}: 'reason' is required")
    kinds = spec.get("kinds")
    if not isinstance(kinds, list) or not kinds or not set(kinds) <= _KINDS:
        raise RulesError(f"{where}: 'kinds' must list 'open' and/or 'click'")
    try:
        user_agent = re.compile(spec["user_agent"]) if "user_agent" in spec else None
        headers = tuple(
            (name.lower(), re.compile(pattern)) for name, pattern in spec.get("headers", {}).items()
        )
        networks = tuple(ipaddress.ip_network(n) for n in spec.get("networks", ()))
    except (re.error, ValueError, TypeError, AttributeError) as exc:
        raise RulesError(f"{where}: {exc}") from None
    exact = spec.get("user_agent_is")
    within = spec.get("within_seconds")
    if within is not None and (isinstance(within, bool) or not isinstance(within, int | float)):
        raise RulesError(f"{where}: 'within_seconds' must be a number")
    rule = Rule(
        reason,
        frozenset(kinds),
        user_agent,
        frozenset(s.strip() for s in exact) if exact is not None else None,
        networks,
        headers,
        float(within) if within is not None else None,
    )
    if rule.user_agent is None and rule.user_agent_is is None and rule.depends_on_user_agent_only:
        raise RulesError(f"{where}: a rule needs at least one condition")
    return rule
