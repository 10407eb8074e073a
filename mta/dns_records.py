"""The DNS records a sending domain needs, written as a DNS host's form wants them, and the live
check of each against what DNS answers: found and correct, found but wrong (and how), missing.

- DKIM (RFC 6376 §3.6.2): `<selector>._domainkey.<domain> TXT`, one per key still published.
  A TXT character-string holds at most 255 bytes (RFC 1035 §3.3.14), so an RSA-2048 record is
  given as several strings too; verifiers join them.
- SPF (RFC 7208) for the domain, authorising the addresses mail leaves from.
- DMARC (RFC 7489 §6.1): a suggestion; any policy found counts.
- The bounce domain's MX, pointing at this server (the VERP return path lands there).
- The tracking host's CNAME: optional, for links on the tenant's own name.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mta.dns import DnsPermanentError, DnsTemporaryError, Resolver

TXT_STRING_MAX = 255  # RFC 1035 §3.3.14: one character-string is a length byte and its data


class Status(enum.StrEnum):
    CORRECT = "correct"
    WRONG = "wrong"  # found, but not what it must be: the finding says how
    MISSING = "missing"
    UNCHECKED = "unchecked"  # DNS failed temporarily (SERVFAIL, timeout): ask again later


@dataclass(frozen=True, slots=True)
class DnsPlan:
    """What the records point at, from the server's configuration."""

    hostname: str  # the bounce domain's MX target
    bounce_domain: str
    spf_mechanisms: tuple[str, ...]  # e.g. ("ip4:192.0.2.10",) or ("a:mta1.example.com",)
    tracking_host: str | None  # the tracker's host name, for the CNAME


@dataclass(frozen=True, slots=True)
class PublishedKey:
    selector: str
    algorithm: str
    public_record: str  # v=DKIM1; k=...; p=...
    state: str


@dataclass(frozen=True, slots=True)
class DnsRecord:
    purpose: str  # dkim, spf, dmarc, bounce_mx, tracking_cname
    type: str  # TXT, MX, CNAME
    name: str  # fully qualified, no trailing dot
    value: str  # TXT: the whole text, unquoted; MX and CNAME: the target host
    zone: str  # the domain the record is entered under at the DNS host
    required: bool = True
    priority: int | None = None  # MX only
    selector: str | None = None  # DKIM only
    key_state: str | None = None  # DKIM only: pending, active, retiring

    @property
    def host(self) -> str:
        """The name relative to its zone, as DNS hosts' forms ask for it ('@' for the apex)."""
        if self.name == self.zone:
            return "@"
        return self.name.removesuffix("." + self.zone)

    @property
    def strings(self) -> list[str]:
        """A TXT value as the character-strings it must be published as (≤ 255 bytes each)."""
        data = self.value
        return [data[i : i + TXT_STRING_MAX] for i in range(0, len(data), TXT_STRING_MAX)]

    @property
    def zone_line(self) -> str:
        """The record as a line of a zone file (BIND syntax)."""
        if self.type == "TXT":
            rdata = " ".join(f'"{s}"' for s in self.strings)
        elif self.type == "MX":
            rdata = f"{self.priority} {self.value}."
        else:
            rdata = f"{self.value}."
        return f"{self.name}. IN {self.type} {rdata}"

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "purpose": self.purpose,
            "type": self.type,
            "name": self.name,
            "host": self.host,
            "value": self.value,
            "required": self.required,
            "zone_line": self.zone_line,
        }
        if self.type == "TXT":
            out["strings"] = self.strings
        if self.priority is not None:
            out["priority"] = self.priority
        if self.selector is not None:
            out["selector"] = self.selector
            out["key_state"] = self.key_state
        return out


@dataclass(frozen=True, slots=True)
class Finding:
    record: DnsRecord
    status: Status
    detail: str = ""

    def as_json(self) -> dict[str, Any]:
        return {**self.record.as_json(), "status": str(self.status), "detail": self.detail}


def records_for(domain: str, keys: Sequence[PublishedKey], plan: DnsPlan) -> list[DnsRecord]:
    """Every record to publish for sending domain `domain` (lower-case, IDNA)."""
    records = [
        DnsRecord(
            "dkim",
            "TXT",
            f"{key.selector}._domainkey.{domain}",
            key.public_record,
            domain,
            selector=key.selector,
            key_state=key.state,
        )
        for key in keys
    ]
    spf = " ".join(("v=spf1", *plan.spf_mechanisms, "~all"))
    records.append(DnsRecord("spf", "TXT", domain, spf, domain))
    dmarc = f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}"
    records.append(DnsRecord("dmarc", "TXT", f"_dmarc.{domain}", dmarc, domain, required=False))
    bounce_zone = plan.bounce_domain.partition(".")[2] or plan.bounce_domain
    records.append(
        DnsRecord("bounce_mx", "MX", plan.bounce_domain, plan.hostname, bounce_zone, priority=10)
    )
    if plan.tracking_host:
        records.append(
            DnsRecord(
                "tracking_cname",
                "CNAME",
                f"track.{domain}",
                plan.tracking_host,
                domain,
                required=False,
            )
        )
    return records


async def check(records: Sequence[DnsRecord], resolver: Resolver) -> list[Finding]:
    """Look every record up in DNS and say how it stands."""
    return [await _check_one(record, resolver) for record in records]


async def _check_one(record: DnsRecord, resolver: Resolver) -> Finding:
    try:
        if record.purpose == "dkim":
            return _dkim(record, await resolver.txt(record.name))
        if record.purpose == "spf":
            return _spf(record, await resolver.txt(record.name))
        if record.purpose == "dmarc":
            return _dmarc(record, await resolver.txt(record.name))
        if record.purpose == "bounce_mx":
            return await _bounce_mx(record, resolver)
        return _cname(record, await resolver.cname(record.name))
    except DnsPermanentError:
        return Finding(record, Status.MISSING, f"{record.name} does not exist in DNS")
    except DnsTemporaryError as exc:
        return Finding(record, Status.UNCHECKED, f"DNS did not answer: {exc}")


def dkim_tags(text: str) -> dict[str, str]:
    """The tags of a DKIM key record (RFC 6376 §3.2), whitespace removed from values (base64
    may be folded). Later duplicates are ignored rather than trusted."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        name, eq, value = part.partition("=")
        if eq:
            tags.setdefault(name.strip().lower(), "".join(value.split()))
    return tags


def _dkim(record: DnsRecord, texts: list[str]) -> Finding:
    found = [t for t in texts if "p=" in t or t.strip().lower().startswith("v=dkim1")]
    if not found:
        return Finding(record, Status.MISSING, "no DKIM record at this name")
    want = dkim_tags(record.value)
    if len(found) > 1:
        return Finding(record, Status.WRONG, f"{len(found)} DKIM records here; publish one")
    tags = dkim_tags(found[0])
    if not tags.get("p"):
        return Finding(record, Status.WRONG, "p= is empty: the record revokes the key")
    if tags.get("k", "rsa") != want["k"]:
        return Finding(
            record, Status.WRONG, f"k={tags.get('k', 'rsa')} where k={want['k']} is expected"
        )
    if tags["p"] != want["p"]:
        if want["p"].startswith(tags["p"]):
            return Finding(
                record, Status.WRONG, "p= is cut short: publish every string of the record"
            )
        return Finding(record, Status.WRONG, "p= holds a different public key")
    return Finding(record, Status.CORRECT)


def _spf(record: DnsRecord, texts: list[str]) -> Finding:
    found = [t for t in texts if t.lower() == "v=spf1" or t.lower().startswith("v=spf1 ")]
    if not found:
        return Finding(record, Status.MISSING, "no SPF record (v=spf1) for the domain")
    if len(found) > 1:
        # RFC 7208 §4.5: more than one SPF record is a permanent error for every receiver.
        return Finding(record, Status.WRONG, f"{len(found)} SPF records; merge them into one")
    terms = {t.lower() for t in found[0].split()}
    want = [m for m in record.value.split()[1:-1] if m.lower() not in terms]
    if want:
        return Finding(record, Status.WRONG, "does not authorise " + ", ".join(want))
    return Finding(record, Status.CORRECT)


def _dmarc(record: DnsRecord, texts: list[str]) -> Finding:
    found = [t for t in texts if t.replace(" ", "").lower().startswith("v=dmarc1")]
    if not found:
        return Finding(record, Status.MISSING, "no DMARC policy (suggested, not required)")
    if len(found) > 1:
        return Finding(record, Status.WRONG, f"{len(found)} DMARC records; receivers ignore all")
    return Finding(record, Status.CORRECT, found[0])


async def _bounce_mx(record: DnsRecord, resolver: Resolver) -> Finding:
    result = await resolver.mx(record.name)
    if result.implicit or not result.hosts:
        return Finding(record, Status.MISSING, f"no MX record for {record.name}")
    hosts = [h.name for h in result.hosts]
    if record.value.lower() not in hosts:
        return Finding(record, Status.WRONG, f"MX points to {', '.join(hosts)}")
    return Finding(record, Status.CORRECT)


def _cname(record: DnsRecord, target: str | None) -> Finding:
    if target is None:
        return Finding(record, Status.MISSING, "no CNAME record")
    if target != record.value.lower():
        return Finding(record, Status.WRONG, f"CNAME points to {target}")
    return Finding(record, Status.CORRECT)
