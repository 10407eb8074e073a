"""What a configuration re-read on SIGHUP changes (systemd's ExecReload), and which of it the
running daemon can take without a restart.

The daemon applies the live keys and logs the others as needing a restart; it never closes a
listener or a session to reload, so no accepted mail and no open SMTP session is lost. The
service processes (delivery, tracker, control when more than one) took their configuration
when spawned, so their sections need a restart.
"""

from __future__ import annotations

import dataclasses

from mta.config import Config

# Keys the daemon applies while running (mta/daemon.py, Daemon.reload).
LIVE = frozenset(
    {
        "log.level",
        "log.format",
        "smtp.max_message_size",
        "smtp.max_recipients",
        "smtp.tls_cert",
        "smtp.tls_key",
        "sending_domains",
        "domains.require_verified_dkim",
    }
)
_NOT_CONFIG = frozenset({"source_path"})


@dataclasses.dataclass(frozen=True, slots=True)
class Changes:
    live: tuple[str, ...]  # applied now
    restart: tuple[str, ...]  # changed in the file, applied at the next start

    def __bool__(self) -> bool:
        return bool(self.live or self.restart)


def changes(old: Config, new: Config) -> Changes:
    """The keys whose values differ between `old` and `new`, as `section.key` (or the
    top-level name for lists such as `routes` and `sending_domains`)."""
    changed: list[str] = []
    for f in dataclasses.fields(Config):
        if f.name in _NOT_CONFIG:
            continue
        before, after = getattr(old, f.name), getattr(new, f.name)
        if before == after:
            continue
        if dataclasses.is_dataclass(before):
            changed += [
                f"{f.name}.{g.name}"
                for g in dataclasses.fields(before)
                if getattr(before, g.name) != getattr(after, g.name)
            ]
        else:
            changed.append(f.name)
    return Changes(
        tuple(k for k in changed if k in LIVE), tuple(k for k in changed if k not in LIVE)
    )
