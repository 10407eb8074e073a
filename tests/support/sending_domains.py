"""Publishing a sending domain's records in the stub DNS server, as an operator would at their
DNS host: from the records the API (or the CLI) returned."""

from __future__ import annotations

from typing import Any

from tests.support.dnsstub import StubDns


def publish(dns_server: StubDns, records: list[dict[str, Any]], *, purposes: set[str]) -> None:
    """Publish the records of `purposes` exactly as given (TXT as its 255-byte strings)."""
    for record in records:
        if record["purpose"] not in purposes:
            continue
        name = record["name"]
        if record["type"] == "TXT":
            strings = record["strings"]
            assert all(len(s) <= 255 for s in strings)
            dns_server.zone.setdefault(name, {}).setdefault("TXT", []).append(
                " ".join(f'"{s}"' for s in strings)
            )
        elif record["type"] == "MX":
            dns_server.add_mx(name, [(record["priority"], record["value"])])
        else:
            dns_server.add_cname(name, record["value"])


def dkim_records(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The DKIM records of a domain's view, by selector."""
    return {r["selector"]: r for r in view["records"] if r["purpose"] == "dkim"}


def findings(view: dict[str, Any]) -> dict[tuple[str, str], tuple[str, str]]:
    """(purpose, name) -> (status, detail) of a domain's last DNS check."""
    return {(f["purpose"], f["name"]): (f["status"], f["detail"]) for f in view["last_check"]}
