"""Mailbox providers: which company runs a recipient's mailbox, from the MX host the mail was
delivered to (issue 15: results by Gmail, Microsoft, Yahoo, Apple, other). The MX decides,
not the address: a company domain hosted on Google Workspace is Gmail to deliverability.
When no MX was recorded yet (mail still queued), the recipient domain itself is read.
Pure: rules as data, tested by a table."""

from __future__ import annotations

PROVIDERS = ("gmail", "microsoft", "yahoo", "apple", "other")

# provider -> host suffixes of its MX servers (and of its consumer address domains)
MX_SUFFIXES: dict[str, tuple[str, ...]] = {
    "gmail": ("google.com", "googlemail.com", "gmail.com"),
    "microsoft": ("outlook.com", "hotmail.com", "live.com", "msn.com", "outlook.office365.com"),
    "yahoo": ("yahoodns.net", "yahoo.com", "ymail.com", "aol.com", "rocketmail.com"),
    "apple": ("icloud.com", "me.com", "mac.com"),
}
# consumer domains whose names are not suffixes of the hosts above (yahoo.co.uk, hotmail.fr...)
DOMAIN_PREFIXES: dict[str, tuple[str, ...]] = {
    "microsoft": ("hotmail.", "outlook.", "live.", "msn."),
    "yahoo": ("yahoo.", "ymail.", "aol."),
    "gmail": ("googlemail.",),
}


def _host(mx: str) -> str:
    host = mx.strip().lower().rstrip(".")
    if host.startswith("["):  # [ipv6]:port
        return host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _by_suffix(host: str) -> str | None:
    for provider, suffixes in MX_SUFFIXES.items():
        if any(host == s or host.endswith("." + s) for s in suffixes):
            return provider
    return None


def mailbox_provider(mx: str | None, domain: str) -> str:
    """The provider of a mailbox: from `mx` ("host" or "host:port" as the queue records it),
    else from the recipient `domain`; "other" when neither says."""
    if mx:
        return _by_suffix(_host(mx)) or "other"
    name = domain.strip().lower().rstrip(".")
    found = _by_suffix(name)
    if found:
        return found
    for provider, prefixes in DOMAIN_PREFIXES.items():
        if name.startswith(prefixes):
            return provider
    return "other"
