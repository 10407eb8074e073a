"""Tracking tokens: compact, URL-safe, signed with HMAC-SHA256, verified without a lookup.

A token is `base64url(payload || tag)` with no padding. The payload is binary:

    byte 0      version (high 3 bits, = 1) | kind (low 5 bits: open, click, unsubscribe, view)
    varint      recipient row id (`recipients.id`; 0 = not tracked per recipient, aggregate only)
    varint      company id
    varint      campaign id (0 = none)
    varint      list id (0 = none; the list "this list" means on the unsubscribe page)
    varint      sent at, seconds since SENT_EPOCH (scanner rule: clicks seconds after delivery)
    click only: varint link index, one flag byte (bit 0: URL deflated), the URL bytes

The tag is the first TAG_BYTES of HMAC-SHA256(key, payload) where key is derived from the
tracker secret (`[tracker] secret`, else the top-level `secret`), so tracker tokens and VERP
addresses never share a key even when they share a secret. During a key rotation tokens made
under `[tracker] previous_secret` still verify; new tokens always use the current secret.

Link targets live INSIDE the signed token (deflated with a preset dictionary of common URL
parts) rather than in a per-message table keyed by (message, link index). Why: the click
redirect then needs no database at all — it keeps working while PostgreSQL is down, costs one
HMAC per request at any rate, works for personalised links in campaigns (a different URL per
recipient, which a per-message table cannot hold without a row per recipient and link), and
nothing unsigned can ever become a redirect target. The price is length: a click link is about
4/3 of the (deflated) URL plus ~30 characters, e.g. 95 characters for a 60-character URL,
against ~30 for a lookup token. Links are still one line and start with the tracker's host.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hmac
import re
import time
import zlib
from typing import NamedTuple

VERSION = 1
# 64-bit tag: tokens can only be checked online (every guess is an HTTP request answered 404),
# so forging one for a chosen recipient takes ~2^63 requests on average — at 100,000 req/s
# about 3 million years, even counting that a previous secret doubles the chances. NIST SP
# 800-107 §5.3.2 accepts truncated HMAC tags this short when the attacker cannot test offline.
# Longer tags would make every link longer for no practical gain.
TAG_BYTES = 8
SENT_EPOCH = 1_735_689_600  # 2025-01-01T00:00:00Z: keeps the sent-at varint at 4 bytes
MAX_URL = 2048  # longer links are left as they are (browsers and mail clients choke on them)
MAX_TOKEN = 4096  # characters; anything longer is refused before decoding
_FLAG_DEFLATED = 1
_TOKEN_CHARS = re.compile(r"^[A-Za-z0-9_-]+$")
_KEY_LABEL = b"sendmill/tracker/token/v1"
_SEAL_LABEL = b"sendmill/tracker/seal\0"  # a sealed value can never pass as a token

# Preset dictionary for raw deflate: fragments most links share. Later entries are cheaper to
# reference, so the most common ones come last. Changing it invalidates outstanding click
# tokens: only ever add a new token version, never edit this for version 1.
_ZDICT = (
    b"utm_content=utm_term=utm_campaign=utm_medium=emailutm_source=newsletter"
    b"&amp;?id=.html.php/index/products/blog/article/account/unsubscribe/login"
    b".org/.net/.io/.co.uk/.de/.fr/.com/https://www.http://https://"
)


class TokenKind(enum.IntEnum):
    OPEN = 1
    CLICK = 2
    UNSUBSCRIBE = 3  # also opens the preference page: same authority over one subscription
    VIEW = 4  # "view in browser"


_KINDS = {kind.value: kind for kind in TokenKind}


class TokenError(ValueError):
    """The token is malformed, truncated, tampered with, of another kind, or forged."""


class Token(NamedTuple):
    """A token's content. A NamedTuple: built on every pixel and click request, and a tuple
    is several times cheaper to create than a frozen dataclass."""

    kind: TokenKind
    recipient_id: int  # 0: aggregate-only tracking, no per-recipient identity
    company_id: int
    campaign_id: int = 0
    list_id: int = 0
    sent_at: int = 0  # unix seconds (whole); 0 = unknown
    link_index: int = 0  # click tokens: position of the link in the HTML part
    url: str = ""  # click tokens: the redirect target


def _varint(value: int, out: bytearray) -> None:
    if value < 0:
        raise ValueError("token fields are non-negative integers")
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if len(text) > MAX_TOKEN or not _TOKEN_CHARS.match(text):
        raise TokenError("not a token")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise TokenError("not a token") from None


def derive_key(secret: bytes) -> bytes:
    """The token key for a secret: its own key, separate from VERP's."""
    return hmac.digest(secret, _KEY_LABEL, "sha256")


_DEFLATED: dict[bytes, bytes] = {}


def _deflate(url: bytes) -> bytes:
    """Deflated `url`, remembered: every recipient of a campaign gets the same links."""
    packed = _DEFLATED.get(url)
    if packed is None:
        if len(_DEFLATED) >= _INFLATED_MAX:
            _DEFLATED.clear()
        packed = _DEFLATED[url] = _deflate_once(url)
    return packed


def _deflate_once(url: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, _ZDICT)
    return packer.compress(url) + packer.flush()


_INFLATED: dict[bytes, str] = {}
_INFLATED_MAX = 16384  # distinct links remembered; a campaign's links repeat for every recipient


def _inflate(data: bytes) -> str:
    url = _INFLATED.get(data)
    if url is None:
        try:
            url = _inflate_once(data).decode("utf-8")
        except UnicodeDecodeError:
            raise TokenError("bad link data") from None
        if len(_INFLATED) >= _INFLATED_MAX:
            _INFLATED.clear()
        _INFLATED[data] = url
    return url


def _inflate_once(data: bytes) -> bytes:
    unpacker = zlib.decompressobj(-15, zdict=_ZDICT)
    try:
        url = unpacker.decompress(data, MAX_URL + 1)
    except zlib.error:
        raise TokenError("bad link data") from None
    if len(url) > MAX_URL or unpacker.unconsumed_tail:
        raise TokenError("link too long")
    return url


class TokenCodec:
    """Makes and verifies tokens under the current secret (and a previous one, when rotating)."""

    def __init__(self, secret: bytes, previous: bytes | None = None) -> None:
        if not secret:
            raise ValueError("the tracker secret must not be empty")
        self._key = derive_key(secret)
        self._keys = (self._key,) + ((derive_key(previous),) if previous else ())

    # --- making ---------------------------------------------------------------------------

    def make(self, token: Token) -> str:
        payload = bytearray([(VERSION << 5) | int(token.kind)])
        for value in (
            token.recipient_id,
            token.company_id,
            token.campaign_id,
            token.list_id,
            max(0, token.sent_at - SENT_EPOCH) if token.sent_at else 0,
        ):
            _varint(value, payload)
        if token.kind is TokenKind.CLICK:
            _varint(token.link_index, payload)
            raw = token.url.encode("utf-8")
            if len(raw) > MAX_URL:
                raise ValueError(f"URLs longer than {MAX_URL} bytes are not tracked")
            packed = _deflate(raw)
            if len(packed) < len(raw):
                payload.append(_FLAG_DEFLATED)
                payload += packed
            else:
                payload.append(0)
                payload += raw
        payload += hmac.digest(self._key, bytes(payload), "sha256")[:TAG_BYTES]
        return _b64(bytes(payload))

    def seal(self, data: bytes) -> str:
        """`data` with a full-length tag, for values that travel inside our own systems (the
        tracking options stored with a message) rather than in links."""
        tag = hmac.digest(self._key, _SEAL_LABEL + data, "sha256")
        return f"{_b64(data)}.{_b64(tag)}"

    def unseal(self, text: str) -> bytes:
        """The data of a `seal`ed value; TokenError unless one of our keys made it."""
        body, dot, tag_text = text.strip().partition(".")
        if not dot:
            raise TokenError("not a sealed value")
        data, tag = _unb64(body), _unb64(tag_text)
        for key in self._keys:
            if hmac.compare_digest(hmac.digest(key, _SEAL_LABEL + data, "sha256"), tag):
                return data
        raise TokenError("sealed value does not verify")

    # --- verifying ------------------------------------------------------------------------

    def verify(self, text: str, kind: TokenKind | None = None) -> Token:
        """The token's content; TokenError unless it is well formed, signed by one of our
        keys, and (when given) of `kind`. No I/O."""
        data = _unb64(text)
        if len(data) < 1 + 5 + TAG_BYTES:
            raise TokenError("truncated token")
        payload, tag = data[:-TAG_BYTES], data[-TAG_BYTES:]
        for key in self._keys:
            if hmac.compare_digest(hmac.digest(key, payload, "sha256")[:TAG_BYTES], tag):
                break
        else:
            raise TokenError("token does not verify")
        return self._parse(payload, kind)

    def _parse(self, payload: bytes, kind: TokenKind | None) -> Token:
        head = payload[0]
        if head >> 5 != VERSION:
            raise TokenError("unknown token version")
        token_kind = _KINDS.get(head & 0x1F)
        if token_kind is None:
            raise TokenError("unknown token kind")
        if kind is not None and token_kind is not kind:
            raise TokenError(f"not a {kind.name.lower()} token")
        fields = [0, 0, 0, 0, 0, 0]
        count = 6 if token_kind is TokenKind.CLICK else 5
        pos, end = 1, len(payload)
        for i in range(count):  # varints, inlined: this runs on every request
            value = shift = 0
            while True:
                if pos >= end or shift > 63:
                    raise TokenError("truncated token")
                byte = payload[pos]
                pos += 1
                value |= (byte & 0x7F) << shift
                if byte < 0x80:
                    break
                shift += 7
            fields[i] = value
        recipient_id, company_id, campaign_id, list_id, sent, link_index = fields
        url = ""
        if token_kind is TokenKind.CLICK:
            if pos >= end:
                raise TokenError("truncated token")
            flags, raw = payload[pos], payload[pos + 1 :]
            if flags & _FLAG_DEFLATED:
                url = _inflate(raw)
            else:
                try:
                    url = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise TokenError("bad link data") from None
        elif pos != end:
            raise TokenError("trailing data in token")
        return Token(
            token_kind,
            recipient_id,
            company_id,
            campaign_id,
            list_id,
            sent + SENT_EPOCH if sent else 0,
            link_index,
            url,
        )


def now() -> int:
    """Whole unix seconds, as tokens store them."""
    return int(time.time())
