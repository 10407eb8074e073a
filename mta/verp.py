"""VERP return paths: `b+TOKEN@bounces.example.com`, one per recipient row.

The token carries the recipient row id and a truncated HMAC-SHA256 under the server secret, so
a DSN sent back to it maps to the exact row without trusting anything a stranger could forge.
Tokens are lower-case base32 because some MTAs fold the case of local parts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

_MAC_BYTES = 5  # 40 bits: forging one address takes ~10^12 tries against a rate-limited listener


class VerpError(ValueError):
    """The address is not a valid VERP address of this server."""


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode().rstrip("=").lower()


def _unb32(text: str) -> bytes:
    text = text.upper()
    return base64.b32decode(text + "=" * (-len(text) % 8))


class Verp:
    """Encodes and decodes VERP addresses for one bounce domain and secret."""

    def __init__(self, secret: bytes, domain: str, local_part: str = "b") -> None:
        self._key = hashlib.sha256(b"sendmill-verp\0" + secret).digest()
        self.domain = domain.lower()
        self.local_part = local_part.lower()

    def _mac(self, recipient_id: int) -> bytes:
        return hmac.new(self._key, str(recipient_id).encode(), hashlib.sha256).digest()[:_MAC_BYTES]

    def address(self, recipient_id: int) -> str:
        """The envelope sender for recipient row `recipient_id`."""
        rid = recipient_id.to_bytes((recipient_id.bit_length() + 7) // 8 or 1, "big")
        return f"{self.local_part}+{_b32(rid)}-{_b32(self._mac(recipient_id))}@{self.domain}"

    def is_bounce_domain(self, address: str) -> bool:
        return address.rpartition("@")[2].lower().rstrip(".") == self.domain

    def decode(self, address: str) -> int:
        """The recipient row id of a VERP address; VerpError when absent, malformed or forged."""
        local, _, domain = address.strip("<>").rpartition("@")
        if domain.lower().rstrip(".") != self.domain:
            raise VerpError("not the bounce domain")
        prefix, plus, token = local.lower().partition("+")
        if not plus or prefix != self.local_part:
            raise VerpError("not a VERP address")
        rid_text, dash, mac_text = token.partition("-")
        try:
            recipient_id = int.from_bytes(_unb32(rid_text), "big")
            mac = _unb32(mac_text)
        except (ValueError, TypeError):
            raise VerpError("malformed VERP token") from None
        if not dash or not hmac.compare_digest(mac, self._mac(recipient_id)):
            raise VerpError("VERP token does not verify")
        return recipient_id
