"""The server secret: keys VERP tokens (and, later, tracking links).

From `secret` in the config or SENDMILL_SECRET; in development, generated once into
`<state_dir>/secret` (mode 0600). Several daemons on one database must share it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from mta.config import Config


def server_secret(config: Config) -> bytes:
    if config.secret:
        return config.secret.encode()
    path = config.state_path / "secret"
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(value)
    return Path(path).read_bytes().strip()
