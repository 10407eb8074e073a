"""DKIM signing (RFC 6376) with RSA-SHA256 and Ed25519-SHA256 (RFC 8463), and key management.

dkimpy does the header work: parsing the header block, relaxed header canonicalisation, and
selecting and hashing the signed fields, with the very functions its verifier uses. The rest is
done here because dkimpy's is slow:

- `dkim.DKIM.sign` re-parses the PEM key in pure Python on every call (~145 µs) and signs with
  pure-Python RSA (113 signs/s). Keys are loaded once into OpenSSL (`cryptography`) or libsodium
  (`pynacl`) objects instead.
- its relaxed body canonicalisation runs regular expressions over every byte (~45 µs per KB, so
  ~4.5 ms for a 100 KB HTML campaign, more than the RSA signature); `_relaxed_body` applies the
  same rules with a few C-speed `bytes` passes. The tests verify every signature with stock
  dkimpy, which canonicalises with its own code.
- a message signed with both an RSA and an Ed25519 key is parsed, canonicalised and
  body-hashed once.

No I/O happens while signing; the daemon builds a `DkimSigners` at start-up and delivery asks
it for the signer of a message's sending domain.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

import dkim
import nacl.signing
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa, utils
from dkim.canonicalization import CanonicalizationPolicy

RSA_SHA256 = "rsa-sha256"
ED25519_SHA256 = "ed25519-sha256"
ALGORITHMS = (RSA_SHA256, ED25519_SHA256)

RSA_BITS = 2048  # RFC 8301 §3.2: signers MUST use at least 1024 bits, SHOULD use 2048
RSA_MIN_BITS = 1024  # RFC 8301 §3.2: verifiers reject anything shorter, so refuse to sign with it

# RFC 6376 §5.4.1 recommended set, plus the fields that define how the body is read and
# Message-ID. RFC 8058 §4: List-Unsubscribe and List-Unsubscribe-Post MUST be covered by the
# signature for one-click unsubscribe to be honoured.
SIGNED_FIELDS = frozenset(
    name.encode()
    for name in (
        "from",
        "reply-to",
        "subject",
        "date",
        "to",
        "cc",
        "resent-date",
        "resent-from",
        "resent-to",
        "resent-cc",
        "in-reply-to",
        "references",
        "list-id",
        "list-help",
        "list-unsubscribe",
        "list-subscribe",
        "list-post",
        "list-owner",
        "list-archive",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "list-unsubscribe-post",
    )
)

# RFC 6376 §3.1: selector = sub-domain *( "." sub-domain )
_SELECTOR = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
)
_HEADER_NAME = b"DKIM-Signature"
_LINE_MAX = 78  # RFC 5322 §2.1.1: lines SHOULD be no longer than 78 characters
_B64_CHUNK = 72  # b= value per folded line: " b=" + 72 stays under _LINE_MAX
_BLANK_LINE = re.compile(rb"\n\r?\n")  # the end of the header block
_LINE_END = re.compile(rb"\r?\n")
_RELAXED = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
_PKCS1V15 = padding.PKCS1v15()
_PREHASHED_SHA256 = utils.Prehashed(hashes.SHA256())

PrivateKey: TypeAlias = rsa.RSAPrivateKey | nacl.signing.SigningKey


class DkimError(Exception):
    """A key cannot be generated or loaded, or a message cannot be signed."""


# --- keys -------------------------------------------------------------------------------------


def generate_key(path: Path, algorithm: str = RSA_SHA256) -> str:
    """Write a new private key (PKCS#8 PEM, mode 0600) to `path`, replacing any file there, and
    return the DNS TXT record value that publishes its public half."""
    pem, record = generate_pem(algorithm)
    _write_private(Path(path), pem)
    return record


def generate_pem(algorithm: str = RSA_SHA256) -> tuple[bytes, str]:
    """A new private key as PKCS#8 PEM, and the DNS TXT record value of its public half."""
    _check_algorithm(algorithm)
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if algorithm == RSA_SHA256:
        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    else:
        key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem, _txt_record(key)


def public_txt_record(key_file: Path, algorithm: str) -> str:
    """The DNS TXT record value (`v=DKIM1; k=...; p=...`) for the key in `key_file`."""
    return _txt_record(_load_private_key(Path(key_file), algorithm))


def ensure_keys(domain: str, selector: str, key_file: Path, algorithm: str = RSA_SHA256) -> str:
    """Generate `key_file` if it does not exist yet (dev mode start-up) and return the TXT
    record value to publish at `selector._domainkey.domain`."""
    key_file = Path(key_file)
    try:
        if key_file.exists():
            return public_txt_record(key_file, algorithm)
        return generate_key(key_file, algorithm)
    except DkimError as exc:
        raise DkimError(f"DKIM key {selector!r} of {domain}: {exc}") from exc


@dataclass(frozen=True)
class SigningKey:
    """One loaded private key and where its public half is published (s=, d=)."""

    selector: str
    domain: str
    algorithm: str
    private_key: PrivateKey = field(repr=False)

    @classmethod
    def load(cls, domain: str, selector: str, key_file: Path, algorithm: str) -> SigningKey:
        """Read a PEM private key once; signing then never touches the file or parses PEM."""
        _check_names(domain.lower(), selector)
        return cls._of(domain, selector, _load_private_key(Path(key_file), algorithm), algorithm)

    @classmethod
    def from_pem(cls, domain: str, selector: str, pem: bytes, algorithm: str) -> SigningKey:
        """A key kept in the database (mta/domain_keys.py) rather than in a file."""
        _check_names(domain.lower(), selector)
        where = f"key {selector}._domainkey.{domain}"
        return cls._of(domain, selector, _parse_private_key(pem, algorithm, where), algorithm)

    @classmethod
    def _of(
        cls,
        domain: str,
        selector: str,
        key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey,
        algorithm: str,
    ) -> SigningKey:
        domain = domain.lower()
        private_key: PrivateKey
        if isinstance(key, ed25519.Ed25519PrivateKey):
            # libsodium signs ~1.6x faster than OpenSSL's Ed25519 here; it takes the raw
            # 32-byte seed, which is what PKCS#8 wraps.
            private_key = nacl.signing.SigningKey(key.private_bytes_raw())
        else:
            private_key = key
        return cls(selector, domain, algorithm, private_key)

    def sign_digest(self, digest: bytes) -> bytes:
        """Sign the SHA-256 hash of the signed header fields."""
        if isinstance(self.private_key, rsa.RSAPrivateKey):
            return self.private_key.sign(digest, _PKCS1V15, _PREHASHED_SHA256)
        # RFC 8463 §3: the Ed25519 input is the SHA-256 hash, not the header data itself.
        return self.private_key.sign(digest).signature


def _check_algorithm(algorithm: str) -> None:
    if algorithm not in ALGORITHMS:
        raise DkimError(f"unknown DKIM algorithm {algorithm!r}: use one of {', '.join(ALGORITHMS)}")


def _check_names(domain: str, selector: str) -> None:
    """d= and s= go into a header field and a DNS name: refuse what cannot, at start-up."""
    if not _SELECTOR.fullmatch(selector):
        raise DkimError(f"DKIM selector {selector!r} is not a dot-separated DNS name")
    try:
        domain.encode("idna")
    except UnicodeError as exc:
        raise DkimError(f"DKIM domain {domain!r} is not a valid domain name") from exc


def _load_private_key(
    key_file: Path, algorithm: str
) -> rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey:
    try:
        pem = key_file.read_bytes()
    except OSError as exc:
        raise DkimError(f"cannot read key file {key_file}: {exc.strerror}") from exc
    return _parse_private_key(pem, algorithm, str(key_file))


def _parse_private_key(
    pem: bytes, algorithm: str, key_file: str
) -> rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey:
    _check_algorithm(algorithm)
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        # TypeError: the key is encrypted; the daemon has no passphrase to give.
        raise DkimError(f"{key_file} is not an unencrypted PEM private key: {exc}") from exc
    if algorithm == RSA_SHA256 and isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < RSA_MIN_BITS:
            raise DkimError(f"{key_file}: RSA key of {key.key_size} bits, {RSA_MIN_BITS} minimum")
        return key
    if algorithm == ED25519_SHA256 and isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    raise DkimError(f"{key_file} does not hold a key for {algorithm}")


def _txt_record(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        # RFC 6376 §3.6.1: p= is the DER SubjectPublicKeyInfo.
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"
    # RFC 8463 §4.2: p= is the bare 32-byte public key, not a SubjectPublicKeyInfo.
    raw = key.public_key().public_bytes_raw()
    return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"


def _write_private(path: Path, data: bytes) -> None:
    """Write through a 0600 temporary file renamed into place: the key is never readable by
    others, not even for a moment, and a crash never leaves half a key behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # created 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- signing ----------------------------------------------------------------------------------


class DkimSigner:
    """Signs messages with one or more keys (typically an RSA and an Ed25519 key of a domain)."""

    def __init__(self, keys: Sequence[SigningKey]) -> None:
        if not keys:
            raise DkimError("a DKIM signer needs at least one key")
        # RSA first: receivers that only check the topmost signature, or know no Ed25519
        # (RFC 8463 is not universal), still find one they can verify.
        ordered = sorted(keys, key=lambda k: k.algorithm != RSA_SHA256)
        # The tags that only depend on the key, built once.
        self._keys = [
            (
                key,
                (
                    b"v=1;",
                    b"a=" + key.algorithm.encode() + b";",
                    b"c=relaxed/relaxed;",
                    b"d=" + key.domain.encode("idna") + b";",
                    b"s=" + key.selector.encode("ascii") + b";",
                ),
            )
            for key in ordered
        ]

    def sign(self, message: bytes) -> bytes:
        """Return the DKIM-Signature header field(s) for `message`, CRLF-terminated, RSA first,
        to be prepended to it. Raises DkimError when the message cannot be signed."""
        headers, body = _split(message)
        names = [name.lower() for name, _ in headers]
        self._check_from(names.count(b"from"))
        # Every present instance of a signed field, in message order; From once more than
        # present (RFC 6376 §8.15): an empty slot no added From header can fill.
        signed = [name for name in names if name in SIGNED_FIELDS]
        signed.append(b"from")
        canonical = _RELAXED.canonicalize_headers(headers)
        body_hash = base64.b64encode(hashlib.sha256(_relaxed_body(body)).digest())
        # Both algorithms hash with SHA-256, so the body hash and these tags are shared.
        tail = (
            b"t=%d;" % int(time.time()),
            *_header_list_tokens(signed),
            b"bh=" + body_hash + b";",
        )
        return b"".join(
            self._signature(key, (*key_tags, *tail), canonical, signed)
            for key, key_tags in self._keys
        )

    @staticmethod
    def _check_from(count: int) -> None:
        if count == 0:
            raise DkimError("message has no From header field (RFC 6376 §5.4 requires signing it)")
        if count > 1:
            # Signing two From fields is exactly the ambiguity RFC 6376 §8.15 warns about;
            # RFC 5322 §3.6 allows one.
            raise DkimError(f"message has {count} From header fields; RFC 5322 allows one")

    @staticmethod
    def _signature(
        key: SigningKey,
        tags: Sequence[bytes],
        canonical: list[tuple[bytes, bytes]],
        signed: list[bytes],
    ) -> bytes:
        # RFC 6376 §3.7: the signature covers this header field itself with an empty b=,
        # hashed last and without its trailing CRLF (dkim.hash_headers does both).
        unsigned = _fold(tags, len(_HEADER_NAME) + 2) + b"\r\n b="
        h = hashlib.sha256()
        dkim.hash_headers(h, _RELAXED, canonical, signed, (_HEADER_NAME, b" " + unsigned), None)
        signature = base64.b64encode(key.sign_digest(h.digest()))
        # b= may contain folding whitespace anywhere (RFC 6376 §3.5); verifiers strip it.
        chunks = [signature[i : i + _B64_CHUNK] for i in range(0, len(signature), _B64_CHUNK)]
        return _HEADER_NAME + b": " + unsigned + b"\r\n ".join(chunks) + b"\r\n"


class DkimSigners:
    """The signers of every sending domain, keys loaded once at start-up."""

    def __init__(self, domains: Mapping[str, Sequence[tuple[str, str | Path, str]]]) -> None:
        """`domains` maps a sending domain to its (selector, key file, algorithm) triples."""
        self._signers = {
            domain.lower(): DkimSigner(
                [
                    SigningKey.load(domain, selector, Path(key_file), algorithm)
                    for selector, key_file, algorithm in keys
                ]
            )
            for domain, keys in domains.items()
            if keys
        }
        self._managed: Mapping[str, DkimSigner] = {}

    def set_configured(self, other: DkimSigners) -> None:
        """Take the config's signers of `other` (a configuration reloaded on SIGHUP)."""
        self._signers = other._signers

    def set_managed(self, signers: Mapping[str, DkimSigner]) -> None:
        """Replace the signers of the domains managed at run time (mta/sending_domains.py).
        A domain with keys in the config keeps those: the config is authoritative for it."""
        self._managed = signers

    def signer_for(self, domain: str) -> DkimSigner | None:
        """The signer for mail from `domain`, or None when it has no DKIM keys."""
        domain = domain.lower()
        return self._signers.get(domain) or self._managed.get(domain)


# --- parsing and canonicalisation ---------------------------------------------------------


def _split(message: bytes) -> tuple[list[list[bytes]], bytes]:
    """The header fields, parsed by dkimpy, and the raw body: everything after the first empty
    line, the boundary dkimpy's parser (and so its verifier) uses. Only the header block goes
    through dkimpy's parser, which splits and re-joins every line it is given."""
    blank = _BLANK_LINE.search(message)
    head, body = (message[: blank.start() + 1], message[blank.end() :]) if blank else (message, b"")
    try:
        headers, _ = dkim.rfc822_parse(head)
    except dkim.MessageFormatError as exc:
        raise DkimError(f"malformed header block: {exc}") from exc
    return headers, body


def _relaxed_body(body: bytes) -> bytes:
    """Relaxed body canonicalisation (RFC 6376 §3.4.4), byte for byte what dkimpy's
    `Relaxed.canonicalize_body(rfc822_parse(...)[1])` gives, without a regex pass over
    every byte in the usual case."""
    if body.count(b"\n") != body.count(b"\r\n"):
        body = _LINE_END.sub(b"\r\n", body)  # bare LF: dkimpy's parser reads it as CRLF
    # Each WSP run becomes one SP; each pass halves the runs, so a few passes at most.
    if b"\t" in body:
        body = body.replace(b"\t", b" ")
    while b"  " in body:
        body = body.replace(b"  ", b" ")
    body = body.replace(b" \r\n", b"\r\n")  # runs are single spaces now: drop WSP at line end
    # Empty lines at the end are ignored; a non-empty body ends with exactly one CRLF.
    end = len(body)
    while body.endswith(b"\r\n", 0, end):
        end -= 2
    return body[:end] + b"\r\n" if end else b""


# --- formatting -------------------------------------------------------------------------------


def _header_list_tokens(names: list[bytes]) -> list[bytes]:
    """h= as `h=from: to: subject;`: FWS after each colon is allowed (RFC 6376 §3.5) and gives
    `_fold` places to break a long list."""
    tokens = [name + b":" for name in names]
    tokens[0] = b"h=" + tokens[0]
    tokens[-1] = tokens[-1][:-1] + b";"
    return tokens


def _fold(tokens: Iterable[bytes], column: int) -> bytes:
    """Join tokens with a space, folding (CRLF SP) before a token that would pass column 78.
    Folds only between tokens, so no domain, selector or field name is ever split."""
    out = bytearray()
    for token in tokens:
        if out and column + 1 + len(token) > _LINE_MAX:
            out += b"\r\n "
            column = 1
        elif out:
            out += b" "
            column += 1
        out += token
        column += len(token)
    return bytes(out)
