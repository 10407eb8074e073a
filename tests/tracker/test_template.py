"""The split-once fast path gives the recipient the same message as the email package does,
for the shapes compose produces; unusual shapes fall back."""

from __future__ import annotations

import base64
import email
import email.policy

import pytest

from mta.compose import MessageSpec, compose
from tracker.prepare import Links, RecipientLinks, Tracking, prepare_message, render
from tracker.template import Irregular, MessageTemplate
from tracker.tokens import TokenCodec

CODEC = TokenCodec(b"template-secret")
HTML = '<html><body><p>Hi <a href="https://a.test/x?y=1&amp;z=2">there</a></p>{extra}</body></html>'
PDF = base64.b64encode(b"%PDF-1.4 binary \x00\xff").decode()


def _compose(**fields) -> bytes:
    spec = {"from": "news@acme.test", "to": "x@dest.test", "subject": "S", **fields}
    return compose(MessageSpec.from_json(spec), "sendmill.test")


SHAPES = {
    "text and html": _compose(text="Bye: {{unsubscribe_url}}", html=HTML.format(extra="")),
    "html only": _compose(html=HTML.format(extra="")),
    "non-ascii html (quoted-printable)": _compose(html=HTML.format(extra="<p>Grüße, Zoë</p>")),
    "mostly non-ascii (base64)": _compose(html=HTML.format(extra="<p>" + "日本語のテキスト" * 40)),
    "long lines": _compose(html=HTML.format(extra="<p>" + "word " * 400 + "</p>")),
    "attachment": _compose(
        text="see attached",
        html=HTML.format(extra=""),
        attachments=[{"filename": "a.pdf", "content": PDF}],
    ),
}


def _recipient(marketing: bool = True) -> RecipientLinks:
    tracking = Tracking(company_id=1, opens=True, clicks=True, marketing=marketing)
    return RecipientLinks(CODEC, Links("https://t.example.com"), tracking, 99, 1_764_000_000)


def _view(data: bytes) -> tuple[dict[str, str], list[tuple[str, object]]]:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    headers = {k.lower(): " ".join(str(v).split()) for k, v in msg.items()}
    parts = []
    for part in msg.walk():
        if not part.is_multipart():
            content = part.get_content()
            if isinstance(content, str):
                content = content.replace("\r\n", "\n").rstrip("\n")
            parts.append((part.get_content_type(), content))
    return headers, parts


@pytest.mark.parametrize("shape", list(SHAPES))
def test_fast_path_matches_the_email_package(shape: str) -> None:
    body = SHAPES[shape]
    recipient = _recipient()
    fast = render(MessageTemplate.parse(body), recipient)
    slow = prepare_message(body, recipient)
    fast_headers, fast_parts = _view(fast)
    slow_headers, slow_parts = _view(slow)
    assert fast_parts == slow_parts
    for name in ("list-unsubscribe", "list-unsubscribe-post", "subject", "from", "message-id"):
        assert fast_headers[name] == slow_headers[name]
    assert max(len(line) for line in fast.split(b"\r\n")) <= 998
    assert b"\n" not in fast.replace(b"\r\n", b"")  # CRLF only
    assert "/c/" in str(fast_parts) and "/o/" in str(fast_parts)


def test_unchanged_parts_keep_their_bytes() -> None:
    body = SHAPES["attachment"]
    fast = render(MessageTemplate.parse(body), _recipient(marketing=False))
    assert PDF[:40].encode() in fast  # the attachment is copied, not re-encoded
    assert b"see attached" in fast


def test_a_message_with_its_own_list_unsubscribe_falls_back() -> None:
    body = _compose(html=HTML.format(extra=""), headers={"List-Unsubscribe": "<mailto:x@y.test>"})
    with pytest.raises(Irregular):
        render(MessageTemplate.parse(body), _recipient())
    slow = email.message_from_bytes(
        prepare_message(body, _recipient()), policy=email.policy.default
    )
    assert slow["List-Unsubscribe"].startswith("<https://t.example.com/u/")


def test_multipart_without_boundary_is_irregular() -> None:
    body = b"From: a@b.test\r\nContent-Type: multipart/mixed\r\n\r\nhello\r\n"
    with pytest.raises(Irregular):
        MessageTemplate.parse(body)
