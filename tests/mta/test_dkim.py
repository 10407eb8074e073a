"""DKIM signatures verify with stock dkimpy, cover the right fields and break when tampered with;
key files are private and match the TXT record published for them."""

from __future__ import annotations

import base64
import random
import re
from collections.abc import Callable
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mta.dkim import (
    ED25519_SHA256,
    RSA_SHA256,
    DkimError,
    DkimSigner,
    DkimSigners,
    SigningKey,
    ensure_keys,
    generate_key,
    public_txt_record,
)

DOMAIN = "example.com"

MESSAGE = (
    b"From: Example News <news@example.com>\r\n"
    b"To: reader@example.org\r\n"
    b"Subject: This week at Example\r\n"
    b"Date: Mon, 02 Jun 2025 10:00:00 +0000\r\n"
    b"Message-ID: <c1.r42@example.com>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 7bit\r\n"
    b"List-Unsubscribe: <https://t.example.com/u/abc>, <mailto:u+abc@example.com>\r\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    b"Received: from app (app.internal [10.0.0.5]) by mx.example.com\r\n"
    b"X-Campaign: 17\r\n"
    b"\r\n"
    b"Hello,\r\n"
    b"\r\n"
    b"Here is the news.\r\n"
)

DnsFunc = Callable[..., bytes | None]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    """One RSA-2048 and one Ed25519 key (generation is slow: once per module), with the TXT
    record `generate_key` returned for each."""
    directory = tmp_path_factory.mktemp("dkim")
    made = {}
    for selector, algorithm in (("rsa", RSA_SHA256), ("ed", ED25519_SHA256)):
        path = directory / f"{selector}.pem"
        made[selector] = (path, generate_key(path, algorithm))
    return made


@pytest.fixture(scope="module")
def dnsfunc(keys: dict[str, tuple[Path, str]]) -> DnsFunc:
    """A dkimpy DNS lookup serving `<selector>._domainkey.example.com` from `keys`."""
    records = {
        f"{selector}._domainkey.{DOMAIN}.".encode(): record.encode()
        for selector, (_, record) in keys.items()
    }

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return records.get(name)

    return lookup


def load(keys: dict[str, tuple[Path, str]], *selectors: str) -> DkimSigner:
    algorithms = {"rsa": RSA_SHA256, "ed": ED25519_SHA256}
    return DkimSigner([SigningKey.load(DOMAIN, s, keys[s][0], algorithms[s]) for s in selectors])


def verifies(message: bytes, dnsfunc: DnsFunc, index: int = 0) -> bool:
    """`dkim.verify` for the signature at `index` (`dkim.verify` only checks the topmost)."""
    try:
        return bool(dkim.DKIM(message).verify(index, dnsfunc=dnsfunc))
    except dkim.DKIMException:  # e.g. a body hash mismatch; dkim.verify maps these to False
        return False


def signature_fields(signed: bytes) -> list[dict[bytes, bytes]]:
    headers, _ = dkim.rfc822_parse(signed)
    return [
        dkim.util.parse_tag_value(re.sub(rb"\r\n", b"", value))
        for name, value in headers
        if name.lower() == b"dkim-signature"
    ]


def signed_fields(signed: bytes) -> list[bytes]:
    """The h= list of the first signature, lower-cased, in order."""
    return re.split(rb"\s*:\s*", signature_fields(signed)[0][b"h"])


# --- verification -----------------------------------------------------------------------------


@pytest.mark.parametrize("selector", ["rsa", "ed"])
def test_signature_verifies_with_stock_dkimpy(
    keys: dict[str, tuple[Path, str]], dnsfunc: DnsFunc, selector: str
) -> None:
    signed = load(keys, selector).sign(MESSAGE) + MESSAGE
    assert dkim.verify(signed, dnsfunc=dnsfunc)
    (fields,) = signature_fields(signed)
    assert fields[b"c"] == b"relaxed/relaxed"
    assert fields[b"d"] == DOMAIN.encode() and fields[b"s"] == selector.encode()


def test_both_keys_sign_rsa_first_and_each_signature_verifies(
    keys: dict[str, tuple[Path, str]], dnsfunc: DnsFunc
) -> None:
    header = load(keys, "ed", "rsa").sign(MESSAGE)  # configured Ed25519 first on purpose
    assert header.endswith(b"\r\n") and header.count(b"DKIM-Signature:") == 2
    signed = header + MESSAGE
    assert [f[b"a"] for f in signature_fields(signed)] == [b"rsa-sha256", b"ed25519-sha256"]
    assert verifies(signed, dnsfunc, 0)
    assert verifies(signed, dnsfunc, 1)


def test_relaxed_canonicalisation_survives_refolding_and_trailing_whitespace(
    keys: dict[str, tuple[Path, str]], dnsfunc: DnsFunc
) -> None:
    signed = load(keys, "rsa", "ed").sign(MESSAGE) + MESSAGE
    # What relays are known to do: refold a header, pad whitespace, strip trailing blank lines.
    mangled = signed.replace(b"Subject: This week", b"Subject:  This\r\n\tweek").replace(
        b"the news.\r\n", b"the   news. \r\n\r\n"
    )
    assert verifies(mangled, dnsfunc, 0)
    assert verifies(mangled, dnsfunc, 1)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\r\n",
        b"\r\n\r\n\r\n",
        b"no final newline",
        b"trailing blanks \t \r\nand\ttabs\t\tinside  \r\n\r\n",
        b"        <td>indented HTML</td>\r\n" * 40,
        b"bare LF\nline endings\n\n",
        b"a bare CR\r stays\r\r\n",
        b" \r\n\t\r\n",
    ],
)
def test_awkward_bodies_verify_with_stock_dkimpy(
    keys: dict[str, tuple[Path, str]], dnsfunc: DnsFunc, body: bytes
) -> None:
    message = MESSAGE.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n" + body
    signed = load(keys, "rsa", "ed").sign(message) + message
    assert verifies(signed, dnsfunc, 0) and verifies(signed, dnsfunc, 1)


def test_random_whitespace_in_bodies_canonicalises_as_dkimpy_does(
    keys: dict[str, tuple[Path, str]], dnsfunc: DnsFunc
) -> None:
    # The body canonicalisation is ours (dkimpy's is slow), dkimpy's verifier uses its own:
    # any difference in the rules shows up as a failed verification.
    rng = random.Random(6376)
    pieces = [b" ", b"\t", b"\r", b"\n", b"\r\n", b"x", b"  "]
    signer = load(keys, "ed")
    head = b"From: a@example.com\r\nSubject: s\r\n\r\n"
    for _ in range(300):
        message = head + b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 16)))
        assert verifies(signer.sign(message) + message, dnsfunc), message


@pytest.mark.parametrize(
    ("what", "old", "new"),
    [
        ("body", b"Here is the news.", b"Here is the fake news."),
        ("subject", b"Subject: This week at Example", b"Subject: You won a prize"),
        ("unsubscribe", b"<https://t.example.com/u/abc>", b"<https://evil.example.net/u>"),
    ],
)
@pytest.mark.parametrize("index", [0, 1])
def test_tampering_after_signing_fails_verification(
    keys: dict[str, tuple[Path, str]],
    dnsfunc: DnsFunc,
    what: str,
    old: bytes,
    new: bytes,
    index: int,
) -> None:
    signed = load(keys, "rsa", "ed").sign(MESSAGE) + MESSAGE
    assert verifies(signed, dnsfunc, index)
    assert not verifies(signed.replace(old, new), dnsfunc, index), what


# --- signed header fields ---------------------------------------------------------------------


def test_from_is_oversigned_once_more_than_present(keys: dict[str, tuple[Path, str]]) -> None:
    names = signed_fields(load(keys, "rsa").sign(MESSAGE) + MESSAGE)
    assert names.count(b"from") == 2
    assert names[-1] == b"from"  # the empty slot comes after the real From


@pytest.mark.parametrize("where", ["top", "bottom"])
def test_adding_a_second_from_breaks_verification(
    keys: dict[str, tuple[Path, str]], dnsfunc: DnsFunc, where: str
) -> None:
    # dkimpy's verifier also hashes one extra From on its own (its bug #644046), so this test
    # alone would pass without oversigning; the h= test above is what pins the oversigning,
    # which protects the mail at verifiers (OpenDKIM, the large mailbox providers) that hash
    # exactly h=.
    header = load(keys, "rsa", "ed").sign(MESSAGE)
    forged = b"From: CEO <ceo@example.com>\r\n"
    if where == "top":
        signed = header + forged + MESSAGE
    else:
        head, body = MESSAGE.split(b"\r\n\r\n", 1)
        signed = header + head + b"\r\n" + forged + b"\r\n" + body
    assert not verifies(signed, dnsfunc, 0)
    assert not verifies(signed, dnsfunc, 1)


def test_only_present_recommended_fields_are_signed_including_rfc8058_ones(
    keys: dict[str, tuple[Path, str]],
) -> None:
    names = signed_fields(load(keys, "rsa").sign(MESSAGE) + MESSAGE)
    assert b"list-unsubscribe" in names and b"list-unsubscribe-post" in names
    assert set(names) == {
        b"from",
        b"to",
        b"subject",
        b"date",
        b"message-id",
        b"mime-version",
        b"content-type",
        b"content-transfer-encoding",
        b"list-unsubscribe",
        b"list-unsubscribe-post",
    }
    # Not present, so not listed: nothing beyond From is frozen against later addition.
    assert b"cc" not in names and b"reply-to" not in names
    # Trace and private fields are left out (RFC 6376 §5.4).
    assert b"received" not in names and b"x-campaign" not in names


def test_every_present_recommended_field_is_signed_and_lines_stay_short(
    keys: dict[str, tuple[Path, str]], dnsfunc: DnsFunc
) -> None:
    recommended = [
        "Reply-To",
        "Cc",
        "Resent-Date",
        "Resent-From",
        "Resent-To",
        "Resent-Cc",
        "In-Reply-To",
        "References",
        "List-Id",
        "List-Help",
        "List-Subscribe",
        "List-Post",
        "List-Owner",
        "List-Archive",
    ]
    extra = b"".join(f"{name}: <x@example.com>\r\n".encode() for name in recommended)
    message = extra + MESSAGE
    header = load(keys, "rsa", "ed").sign(message)
    names = signed_fields(header + message)
    assert {n.lower().encode() for n in recommended} <= set(names)
    assert all(len(line) <= 78 for line in header.split(b"\r\n"))
    assert verifies(header + message, dnsfunc, 0)
    assert verifies(header + message, dnsfunc, 1)


def test_a_message_without_from_is_refused(keys: dict[str, tuple[Path, str]]) -> None:
    message = MESSAGE.replace(b"From: Example News <news@example.com>\r\n", b"")
    with pytest.raises(DkimError, match="no From"):
        load(keys, "rsa").sign(message)


def test_a_message_with_two_from_fields_is_refused(keys: dict[str, tuple[Path, str]]) -> None:
    with pytest.raises(DkimError, match="2 From"):
        load(keys, "rsa").sign(b"From: a@example.com\r\n" + MESSAGE)


def test_a_malformed_header_block_is_refused(keys: dict[str, tuple[Path, str]]) -> None:
    with pytest.raises(DkimError, match="malformed"):
        load(keys, "rsa").sign(b"not a header line\r\n" + MESSAGE)


# --- keys -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("algorithm", "k"), [(RSA_SHA256, "rsa"), (ED25519_SHA256, "ed25519")])
def test_key_file_is_private_and_the_txt_record_matches_it(
    tmp_path: Path, algorithm: str, k: str
) -> None:
    path = tmp_path / "state" / "dkim" / "s1.pem"  # parent directories do not exist yet
    record = generate_key(path, algorithm)
    assert path.stat().st_mode & 0o777 == 0o600
    assert record == public_txt_record(path, algorithm)
    tags = dict(tag.split("=", 1) for tag in record.split("; "))
    assert tags["v"] == "DKIM1" and tags["k"] == k
    public = serialization.load_pem_private_key(path.read_bytes(), None).public_key()
    if algorithm == RSA_SHA256:
        expected = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert isinstance(public, rsa.RSAPublicKey) and public.key_size == 2048
    else:  # RFC 8463: the raw 32-byte key
        expected = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert base64.b64decode(tags["p"]) == expected
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_ensure_keys_generates_a_missing_key_once_then_keeps_it(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    first = ensure_keys(DOMAIN, "s1", path, ED25519_SHA256)
    pem = path.read_bytes()
    assert ensure_keys(DOMAIN, "s1", path, ED25519_SHA256) == first
    assert path.read_bytes() == pem


@pytest.mark.parametrize(
    ("selector", "file", "algorithm", "error"),
    [
        ("rsa", "ed.pem", RSA_SHA256, "does not hold a key for rsa-sha256"),
        ("ed", "rsa.pem", ED25519_SHA256, "does not hold a key for ed25519"),
        ("rsa", "rsa.pem", "rsa-sha1", "unknown DKIM algorithm"),
        ("rsa", "missing.pem", RSA_SHA256, "cannot read"),
        ("bad selector", "rsa.pem", RSA_SHA256, "selector"),
    ],
)
def test_unusable_keys_are_refused_at_load(
    keys: dict[str, tuple[Path, str]], selector: str, file: str, algorithm: str, error: str
) -> None:
    directory = keys["rsa"][0].parent
    with pytest.raises(DkimError, match=error):
        SigningKey.load(DOMAIN, selector, directory / file, algorithm)


def test_a_key_file_that_is_not_pem_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.pem"
    path.write_text("hello")
    with pytest.raises(DkimError, match="not an unencrypted PEM private key"):
        SigningKey.load(DOMAIN, "s1", path, RSA_SHA256)


def test_signers_are_found_by_sending_domain_whatever_its_case(
    keys: dict[str, tuple[Path, str]], dnsfunc: DnsFunc
) -> None:
    signers = DkimSigners(
        {
            "Example.com": [
                ("rsa", str(keys["rsa"][0]), RSA_SHA256),
                ("ed", keys["ed"][0], ED25519_SHA256),
            ],
            "nokeys.example": [],
        }
    )
    signer = signers.signer_for("EXAMPLE.COM")
    assert signer is not None
    signed = signer.sign(MESSAGE) + MESSAGE
    assert verifies(signed, dnsfunc, 0) and verifies(signed, dnsfunc, 1)
    assert signers.signer_for("nokeys.example") is None
    assert signers.signer_for("other.example") is None
