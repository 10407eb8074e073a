"""Tracking tokens: round trips, compactness, rotation, and every way a forged token fails."""

from __future__ import annotations

import base64

import pytest

from tracker.tokens import MAX_URL, TAG_BYTES, Token, TokenCodec, TokenError, TokenKind

CODEC = TokenCodec(b"current-secret")


def _click(url: str, **fields: int) -> Token:
    return Token(
        TokenKind.CLICK,
        123456,
        7,
        campaign_id=42,
        list_id=3,
        link_index=5,
        url=url,
        sent_at=1_764_000_000,
        **fields,
    )


def test_open_token_round_trips_and_is_compact() -> None:
    token = Token(
        TokenKind.OPEN, 98_765_432, 12, campaign_id=3456, list_id=2, sent_at=1_764_000_000
    )
    text = CODEC.make(token)
    assert CODEC.verify(text, TokenKind.OPEN) == token
    assert len(text) <= 32  # fits comfortably in an <img src>
    assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_click_token_carries_the_url_compressed() -> None:
    url = "https://www.example.com/products/shoes?utm_source=newsletter&utm_medium=email&id=9"
    text = CODEC.make(_click(url))
    back = CODEC.verify(text, TokenKind.CLICK)
    assert back.url == url and back.link_index == 5 and back.campaign_id == 42
    assert len(text) < len(url) + 30  # deflate with the URL dictionary pays for the tag


def test_unicode_and_incompressible_urls_round_trip() -> None:
    for url in ("https://exämple.de/ü?q=ß", "https://x.io/" + "Zq8" * 20):
        assert CODEC.verify(CODEC.make(_click(url)), TokenKind.CLICK).url == url


def test_token_of_another_kind_is_refused() -> None:
    text = CODEC.make(Token(TokenKind.OPEN, 1, 1))
    with pytest.raises(TokenError):
        CODEC.verify(text, TokenKind.CLICK)
    with pytest.raises(TokenError):
        CODEC.verify(text, TokenKind.UNSUBSCRIBE)


def test_previous_secret_verifies_during_rotation_and_never_after() -> None:
    old = TokenCodec(b"old-secret")
    text = old.make(_click("https://example.com/a"))
    rotating = TokenCodec(b"current-secret", previous=b"old-secret")
    assert rotating.verify(text).url == "https://example.com/a"
    with pytest.raises(TokenError):
        CODEC.verify(text)  # rotation finished: the old secret is gone
    # new tokens are made under the current secret
    assert CODEC.verify(rotating.make(_click("https://example.com/b"))).url.endswith("/b")


def test_forged_truncated_and_tampered_tokens_are_refused() -> None:
    text = CODEC.make(_click("https://example.com/landing"))
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    forged = [
        TokenCodec(b"attacker").make(_click("https://evil.example/")),
        text[:-1],
        text[:-4],
        text[:10],
        "",
        text + "A",
        text + "!",
        text.replace(text[3], "A" if text[3] != "A" else "B", 1),
        "../" + text,
        "A" * 5000,
    ]
    # every single flipped bit, anywhere in payload or tag
    for i in range(len(raw)):
        flipped = bytearray(raw)
        flipped[i] ^= 0x01
        forged.append(base64.urlsafe_b64encode(bytes(flipped)).rstrip(b"=").decode())
    # a valid tag moved onto another payload
    other = base64.urlsafe_b64decode(
        (t := CODEC.make(_click("https://evil.example/"))) + "=" * (-len(t) % 4)
    )
    swap = other[:-TAG_BYTES] + raw[-TAG_BYTES:]
    forged.append(base64.urlsafe_b64encode(swap).rstrip(b"=").decode())
    for bad in forged:
        with pytest.raises(TokenError):
            CODEC.verify(bad, TokenKind.CLICK)


def test_overlong_urls_are_not_tokenised() -> None:
    with pytest.raises(ValueError):
        CODEC.make(_click("https://example.com/" + "a" * MAX_URL))


def test_hex_form_round_trips_in_either_case_and_refuses_tampering() -> None:
    token = Token(TokenKind.UNSUBSCRIBE, 77, 5, list_id=3)
    text = CODEC.make_hex(token)
    assert text == text.lower() and set(text) <= set("0123456789abcdef")
    assert CODEC.verify_hex(text, TokenKind.UNSUBSCRIBE) == token
    assert CODEC.verify_hex(text.upper(), TokenKind.UNSUBSCRIBE) == token
    for bad in (text[:-2], text + "0", text[:-1] + ("0" if text[-1] != "0" else "1"), "zz", ""):
        with pytest.raises(TokenError):
            CODEC.verify_hex(bad, TokenKind.UNSUBSCRIBE)
