"""DKIM private keys at rest: sealed with AES-256-GCM under a key derived from the server secret.

The database holds the sealed key, never the PEM: a dump or a replica leaks nothing without the
secret. The key is derived with HKDF (RFC 5869) under its own label, so it is never the secret
itself nor any other key derived from it (VERP, tracking, JWT). The domain and selector are the
associated data: a sealed key copied onto another domain's row does not open.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_INFO = b"sendmill dkim private keys v1"
_NONCE = 12  # bytes: AES-GCM's standard nonce, random per sealing (NIST SP 800-38D §8.2.2)


class KeySealError(Exception):
    """A sealed key does not open: another server secret, or the row was tampered with."""


class KeySeal:
    def __init__(self, server_secret: bytes) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
            server_secret
        )
        self._aead = AESGCM(key)

    def seal(self, pem: bytes, domain: str, selector: str) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, pem, _bound(domain, selector))

    def open(self, sealed: bytes, domain: str, selector: str) -> bytes:
        try:
            return self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], _bound(domain, selector))
        except (InvalidTag, ValueError):
            raise KeySealError(
                f"the DKIM key {selector}._domainkey.{domain} does not open with this server "
                "secret (daemons sharing a database must share SENDMILL_SECRET)"
            ) from None


def _bound(domain: str, selector: str) -> bytes:
    return f"{selector}._domainkey.{domain.lower()}".encode()
