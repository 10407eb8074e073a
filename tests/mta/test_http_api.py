"""The HTTP submission API under a real uvicorn server, a real httpx client, a real PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
import uvicorn
from prometheus_client import REGISTRY
from starlette.applications import Starlette

from mta import credentials, database, tenants
from mta.credentials import CredentialStore
from mta.http_api import create_app
from mta.submission import SubmissionPolicy

HOSTNAME = "sendmill.test"
DOMAIN = "example.test"
MAX_BODY = 64 * 1024
MAX_MESSAGE = 32 * 1024
PDF = b"%PDF-1.4\n\x00\xff binary attachment\n%%EOF\n"

Serve = Callable[[Starlette], Awaitable[str]]


@dataclass
class Account:
    company_id: int
    key: str
    key_id: int

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def make_account(pool: asyncpg.Pool, company: str, domain: str) -> Account:
    company_id = await tenants.ensure_company(pool, company)
    await pool.execute(
        "INSERT INTO sending_domains (company_id, domain) VALUES ($1, $2)", company_id, domain
    )
    issued = await credentials.create_api_key(pool, company_id, "test")
    return Account(company_id, issued.login, issued.id)


class ReadySwitch:
    """The daemon's readiness check, as a switch the test flips."""

    def __init__(self) -> None:
        self.ready = True

    async def __call__(self) -> bool:
        return self.ready


def build_app(db: asyncpg.Pool, ready: ReadySwitch | None = None) -> Starlette:
    return create_app(
        db=db,
        credentials=CredentialStore(db),
        policy=SubmissionPolicy(db, HOSTNAME, MAX_MESSAGE, max_recipients=20),
        max_age=3600,
        max_body_size=MAX_BODY,
        ready=ready,
    )


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Runs apps under uvicorn on 127.0.0.1 (a port the OS picks) in the test's event loop."""
    running: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(app: Starlette) -> str:
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        running.append((server, task))
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn exited before starting")
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    yield start
    for server, _ in running:
        server.should_exit = True
    await asyncio.gather(*(task for _, task in running))


@dataclass
class Api:
    client: httpx.AsyncClient
    pool: asyncpg.Pool
    acme: Account
    ready: ReadySwitch

    async def submit(self, spec: Any, account: Account | None = None, **kwargs: Any):
        headers = (account or self.acme).auth
        return await self.client.post("/api/v1/messages", json=spec, headers=headers, **kwargs)


@pytest.fixture
async def api(pool: asyncpg.Pool, serve: Serve) -> AsyncIterator[Api]:
    acme = await make_account(pool, "acme", DOMAIN)
    ready = ReadySwitch()
    base_url = await serve(build_app(pool, ready))
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        yield Api(client, pool, acme, ready)


def message(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "from": {"email": f"app@{DOMAIN}", "name": "Acme App"},
        "to": ["Ann <ann@dest.test>"],
        "subject": "Your order",
        "text": "Thanks for your order.",
    }
    spec.update(overrides)
    return spec


def assert_error(response: httpx.Response, status: int, error_code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error_code", "message", "details"}
    assert body["error_code"] == error_code
    assert isinstance(body["message"], str) and body["message"]
    return body


def submissions_counted(result: str) -> float:
    value = REGISTRY.get_sample_value("sendmill_http_submissions_total", {"result": result})
    return value or 0.0


async def stored_body(pool: asyncpg.Pool, recipient_id: int) -> email.message.EmailMessage:
    raw = await pool.fetchval(
        "SELECT m.body FROM messages m JOIN recipients r ON r.message_id = m.id WHERE r.id = $1",
        recipient_id,
    )
    return email.message_from_bytes(raw, policy=email.policy.default)


# --- JSON submissions -------------------------------------------------------------------------


async def test_json_message_with_text_html_and_attachment_is_queued_per_recipient(
    api: Api,
) -> None:
    response = await api.submit(
        message(
            to=["Ann <ann@dest.test>", {"email": "bob@dest.test", "name": "Bob"}],
            cc=["carol@other.test"],
            bcc=["secret@hidden.test", "ANN@dest.test"],  # ann is already a recipient
            html="<p>Thanks for your <b>order</b>.</p>",
            headers={"X-Order": "1234"},
            attachments=[
                {
                    "filename": "invoice.pdf",
                    "content_type": "application/pdf",
                    "content": base64.b64encode(PDF).decode(),
                }
            ],
        )
    )

    assert response.status_code == 202, response.text
    body = response.json()
    assert body["message_id"].startswith("<") and body["message_id"].endswith(f"@{HOSTNAME}>")
    assert [(r["email"], r["state"]) for r in body["recipients"]] == [
        ("ann@dest.test", "queued"),
        ("bob@dest.test", "queued"),
        ("carol@other.test", "queued"),
        ("secret@hidden.test", "queued"),
    ]
    rows = await api.pool.fetch("SELECT id, recipient, message_id FROM recipients ORDER BY id")
    assert [r["id"] for r in rows] == [r["id"] for r in body["recipients"]]
    assert len({r["message_id"] for r in rows}) == 1

    parsed = await stored_body(api.pool, rows[0]["id"])
    assert parsed["Message-ID"] == body["message_id"]
    assert parsed["From"] == f"Acme App <app@{DOMAIN}>"
    assert parsed["To"] == "Ann <ann@dest.test>, Bob <bob@dest.test>"
    assert parsed["Cc"] == "carol@other.test"
    assert parsed["Bcc"] is None
    assert parsed["X-Order"] == "1234"
    assert parsed["Date"] is not None
    assert parsed.get_content_type() == "multipart/mixed"
    alternative, attachment = parsed.iter_parts()
    assert alternative.get_content_type() == "multipart/alternative"
    text, html = alternative.iter_parts()
    assert text.get_content_type() == "text/plain"
    assert text.get_content().strip() == "Thanks for your order."
    assert html.get_content_type() == "text/html"
    assert "<b>order</b>" in html.get_content()
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == "invoice.pdf"
    assert attachment.get_content() == PDF
    raw = await api.pool.fetchval("SELECT body FROM messages")
    assert b"secret@hidden.test" not in raw
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only


async def test_a_bcc_only_html_message_discloses_no_recipient(api: Api) -> None:
    spec = message(html="<p>hi</p>", bcc=["quiet@dest.test"])
    del spec["to"], spec["text"]

    response = await api.submit(spec)

    assert response.status_code == 202, response.text
    raw = await api.pool.fetchval("SELECT body FROM messages")
    assert b"quiet@dest.test" not in raw
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["To"] == "undisclosed-recipients:;"
    assert parsed.get_content_type() == "text/html"


async def test_non_ascii_subject_and_names_are_encoded_words(api: Api) -> None:
    response = await api.submit(
        message(
            **{"from": "Jörg Müller <app@example.test>"},
            to=[{"email": "zoe@dest.test", "name": "Zoë, Ph.D."}],
            subject="Grüße aus Köln",
            text="Schöne Grüße",
        )
    )

    assert response.status_code == 202, response.text
    raw = await api.pool.fetchval("SELECT body FROM messages")
    assert raw.isascii()  # RFC 2047 headers, quoted-printable or base64 body
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == "Grüße aus Köln"
    assert parsed["From"].addresses[0].display_name == "Jörg Müller"
    assert parsed["To"].addresses[0].display_name == "Zoë, Ph.D."
    assert parsed.get_content().strip() == "Schöne Grüße"


async def test_bulk_priority_is_stored_on_the_recipients(api: Api) -> None:
    response = await api.submit(message(priority="bulk"))

    assert response.status_code == 202, response.text
    assert await api.pool.fetchval("SELECT priority FROM recipients") == 1


async def test_an_x_api_key_header_authenticates_too(api: Api) -> None:
    response = await api.client.post(
        "/api/v1/messages", json=message(), headers={"X-Api-Key": api.acme.key}
    )

    assert response.status_code == 202, response.text


# --- raw submissions --------------------------------------------------------------------------

RAW = (
    b"From: Acme <app@example.test>\n"
    b"To: ann@dest.test\n"
    b"Cc: Carol <carol@other.test>\n"
    b"Bcc: secret@hidden.test,\n"
    b" also-secret@hidden.test\n"
    b"Subject: raw\n"
    b"\n"
    b"hello\n"
)


async def test_a_raw_message_takes_its_recipients_from_the_headers_and_loses_bcc(
    api: Api,
) -> None:
    response = await api.client.post(
        "/api/v1/messages",
        content=RAW,
        headers={**api.acme.auth, "Content-Type": "message/rfc822"},
    )

    assert response.status_code == 202, response.text
    body = response.json()
    assert [r["email"] for r in body["recipients"]] == [
        "ann@dest.test",
        "carol@other.test",
        "secret@hidden.test",
        "also-secret@hidden.test",
    ]
    assert await api.pool.fetchval("SELECT mail_from FROM messages") == f"app@{DOMAIN}"
    raw = await api.pool.fetchval("SELECT body FROM messages")
    assert b"hidden.test" not in raw
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Message-ID"] == body["message_id"]
    assert parsed["Subject"] == "raw"
    assert parsed.get_content().strip() == "hello"


async def test_a_raw_message_uses_the_envelope_from_the_query(api: Api) -> None:
    query = urlencode([("from", f"bounces@{DOMAIN}"), ("to", "x@dest.test"), ("to", "y@d.test")])
    response = await api.client.post(
        f"/api/v1/messages?{query}",
        content=RAW,
        headers={**api.acme.auth, "Content-Type": "message/rfc822"},
    )

    assert response.status_code == 202, response.text
    assert [r["email"] for r in response.json()["recipients"]] == ["x@dest.test", "y@d.test"]
    assert await api.pool.fetchval("SELECT mail_from FROM messages") == f"bounces@{DOMAIN}"


# --- authentication and scoping ---------------------------------------------------------------


async def test_a_missing_key_is_401_with_a_bearer_challenge(api: Api) -> None:
    before = submissions_counted("unauthorized")

    response = await api.client.post("/api/v1/messages", json=message())

    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert submissions_counted("unauthorized") == before + 1


@pytest.mark.parametrize(
    "key",
    ["sm_nope_nope", "not-even-a-key", "sm_", "Basic dXNlcjpwYXNz"],
)
async def test_a_wrong_key_is_401(api: Api, key: str) -> None:
    response = await api.client.post(
        "/api/v1/messages", json=message(), headers={"Authorization": f"Bearer {key}"}
    )

    assert_error(response, 401, "invalid_api_key")
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_another_keys_secret_with_a_valid_prefix_is_401(api: Api) -> None:
    prefix = api.acme.key.rsplit("_", 1)[0]

    response = await api.client.post(
        "/api/v1/messages", json=message(), headers={"Authorization": f"Bearer {prefix}_forged"}
    )

    assert_error(response, 401, "invalid_api_key")


async def test_a_revoked_key_is_401(api: Api) -> None:
    revoked = await make_account(api.pool, "gone", "gone.test")
    await credentials.revoke(api.pool, revoked.key_id)

    response = await api.submit(message(**{"from": "app@gone.test"}), account=revoked)

    assert_error(response, 401, "invalid_api_key")
    assert await api.pool.fetchval("SELECT count(*) FROM messages") == 0


async def test_a_recipient_is_visible_to_its_company_only(api: Api) -> None:
    other = await make_account(api.pool, "other", "other-company.test")
    submitted = await api.submit(message())
    recipient_id = submitted.json()["recipients"][0]["id"]
    url = f"/api/v1/messages/recipients/{recipient_id}"

    own = await api.client.get(url, headers=api.acme.auth)
    foreign = await api.client.get(url, headers=other.auth)
    missing = await api.client.get(f"/api/v1/messages/recipients/{2**70}", headers=api.acme.auth)
    anonymous = await api.client.get(url)

    assert own.status_code == 200, own.text
    status = own.json()
    assert status["id"] == recipient_id
    assert status["email"] == "ann@dest.test"
    assert status["state"] == "queued"
    assert status["attempts"] == 0
    assert status["last_reply"] is None
    assert status["history"] == []
    assert_error(foreign, 404, "not_found")
    assert_error(missing, 404, "not_found")
    assert_error(anonymous, 401, "unauthorized")


async def test_a_recipient_status_shows_attempts_and_the_last_reply(api: Api) -> None:
    submitted = await api.submit(message())
    recipient_id = submitted.json()["recipients"][0]["id"]
    await api.pool.execute(
        "UPDATE recipients SET state = 'deferred', attempts = 1, last_reply = $2 WHERE id = $1",
        recipient_id,
        "451 4.7.1 Greylisted",
    )
    await api.pool.execute(
        "INSERT INTO attempts (recipient_id, mx, code, reply, outcome) "
        "VALUES ($1, 'mx.dest.test:25', 451, '451 4.7.1 Greylisted', 'deferred')",
        recipient_id,
    )

    response = await api.client.get(
        f"/api/v1/messages/recipients/{recipient_id}", headers=api.acme.auth
    )

    status = response.json()
    assert (status["state"], status["attempts"]) == ("deferred", 1)
    assert status["last_reply"] == "451 4.7.1 Greylisted"
    assert [(a["code"], a["outcome"]) for a in status["history"]] == [(451, "deferred")]


# --- refused submissions ----------------------------------------------------------------------


async def test_invalid_json_is_400_in_the_error_shape(api: Api) -> None:
    response = await api.client.post(
        "/api/v1/messages",
        content=b'{"from": "app@example.test", "to": [',
        headers={**api.acme.auth, "Content-Type": "application/json"},
    )

    body = assert_error(response, 400, "invalid_json")
    assert body["details"]["line"] == 1


@pytest.mark.parametrize(
    ("content", "error_code"),
    [(b"\xff\xfe\x00garbage", "invalid_json"), (b"[" * 100_000, "invalid_json")],
)
async def test_undecodable_or_absurd_json_is_still_400(
    api: Api, content: bytes, error_code: str
) -> None:
    response = await api.client.post(
        "/api/v1/messages",
        content=content[:MAX_BODY],
        headers={**api.acme.auth, "Content-Type": "application/json"},
    )

    assert_error(response, 400, error_code)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"subject": "hi\r\nBcc: victim@dest.test"}, "subject"),
        ({"headers": {"X-Note": "ok\r\nBcc: victim@dest.test"}}, "headers.X-Note"),
        ({"headers": {"Bcc": "victim@dest.test"}}, "headers.Bcc"),
        ({"headers": {"Content-Type": "text/html"}}, "headers.Content-Type"),
        ({"headers": {"X-Bad Name": "v"}}, "headers.X-Bad Name"),
        ({"to": [{"email": "ann@dest.test", "name": "Ann\nBcc: victim@dest.test"}]}, "to[0].name"),
        ({"to": ["ann@dest.test\r\nBcc: victim@dest.test"]}, "to[0]"),
    ],
)
async def test_header_injection_is_refused_with_422(
    api: Api, overrides: dict[str, Any], field: str
) -> None:
    response = await api.submit(message(**overrides))

    body = assert_error(response, 422, "invalid_field")
    assert body["details"] == {"field": field}
    assert await api.pool.fetchval("SELECT count(*) FROM messages") == 0


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"to": 5}, "to"),
        ({"to": [7]}, "to[0]"),
        ({"cc": [{"name": "no address"}]}, "cc[0].email"),
        ({"subject": ["not", "a", "string"]}, "subject"),
        ({"text": 3}, "text"),
        ({"html": {"p": 1}}, "html"),
        ({"headers": ["X-A: b"]}, "headers"),
        ({"headers": {"X-A": 1}}, "headers.X-A"),
        ({"attachments": {"filename": "a"}}, "attachments"),
        ({"attachments": [{"filename": "a.bin", "content": 12}]}, "attachments[0].content"),
        ({"priority": "urgent"}, "priority"),
        ({"colour": "red"}, "colour"),
        ({"from": None}, "from"),
        ({"to": ["not an address"]}, "to[0]"),
    ],
)
async def test_wrongly_typed_fields_are_422_naming_the_field(
    api: Api, overrides: dict[str, Any], field: str
) -> None:
    response = await api.submit(message(**overrides))

    body = assert_error(response, 422, "invalid_field")
    assert body["details"] == {"field": field}


async def test_bad_base64_in_an_attachment_is_422(api: Api) -> None:
    attachment = {"filename": "a.pdf", "content_type": "application/pdf", "content": "%%%"}

    response = await api.submit(message(attachments=[attachment]))

    body = assert_error(response, 422, "invalid_field")
    assert body["details"] == {"field": "attachments[0].content"}
    assert "base64" in body["message"]


async def test_a_from_domain_the_company_does_not_own_is_403(api: Api) -> None:
    await make_account(api.pool, "rival", "rival.test")

    for sender in ("app@unknown.test", "ceo@rival.test"):
        response = await api.submit(message(**{"from": sender}))
        assert_error(response, 403, "sender_domain_not_allowed")
    assert await api.pool.fetchval("SELECT count(*) FROM messages") == 0


async def test_an_unsupported_content_type_is_415(api: Api) -> None:
    response = await api.client.post(
        "/api/v1/messages",
        content=b"hello",
        headers={**api.acme.auth, "Content-Type": "text/plain"},
    )

    assert_error(response, 415, "unsupported_media_type")


async def test_a_body_over_the_limit_is_413_and_the_connection_stays_usable(api: Api) -> None:
    spec = message(text="x" * (MAX_BODY + 1))

    response = await api.submit(spec)
    after = await api.submit(message())

    assert_error(response, 413, "body_too_large")
    assert "close" not in response.headers.get("connection", "")
    assert after.status_code == 202
    assert await api.pool.fetchval("SELECT count(*) FROM messages") == 1


async def test_a_chunked_body_is_cut_off_soon_after_the_limit(api: Api) -> None:
    chunk = b"x" * 65536
    total = 1024 * 1024 * 1024
    sent = 0

    async def upload() -> AsyncIterator[bytes]:
        nonlocal sent
        while sent < total:
            sent += len(chunk)
            yield chunk

    try:
        response = await api.client.post(
            "/api/v1/messages",
            content=upload(),
            headers={**api.acme.auth, "Content-Type": "message/rfc822"},
        )
    except httpx.TransportError:
        pass  # the connection was closed under the upload: a reset may beat the 413
    else:
        assert_error(response, 413, "body_too_large")
    # limit + the bounded drain + socket buffers; nowhere near the gigabyte
    assert sent < 64 * 1024 * 1024


async def test_a_declared_gigabyte_is_refused_before_the_body_is_sent(api: Api) -> None:
    port = api.client.base_url.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /api/v1/messages HTTP/1.1\r\n"
        b"Host: 127.0.0.1\r\n"
        b"Authorization: Bearer " + api.acme.key.encode() + b"\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: 1073741824\r\n"
        b"Expect: 100-continue\r\n"
        b"\r\n"
    )
    await writer.drain()

    async with asyncio.timeout(5):
        reply = await reader.read()  # the server answers and closes without a 100 Continue
    writer.close()

    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert b"connection: close" in head.lower()
    assert json.loads(body)["error_code"] == "body_too_large"


async def test_a_message_over_the_policy_size_is_413(api: Api) -> None:
    big = base64.b64encode(b"\0" * (MAX_MESSAGE + 1024)).decode()  # fits the body, not the message
    attachment = {"filename": "big.bin", "content": big}

    response = await api.submit(message(attachments=[attachment]))

    assert_error(response, 413, "message_too_large")


async def test_unknown_paths_and_methods_answer_in_the_error_shape(api: Api) -> None:
    missing = await api.client.get("/api/v1/nothing-here")
    wrong_method = await api.client.get("/api/v1/messages")

    assert_error(missing, 404, "not_found")
    assert_error(wrong_method, 405, "method_not_allowed")
    assert "POST" in wrong_method.headers["allow"]


# --- operations -------------------------------------------------------------------------------


async def test_metrics_count_http_submissions(api: Api) -> None:
    before = submissions_counted("accepted")
    await api.submit(message())

    response = await api.client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'sendmill_http_submissions_total{result="accepted"}' in response.text
    assert "sendmill_recipients_queued_total" in response.text
    assert submissions_counted("accepted") == before + 1


async def test_health_is_alive_and_ready_follows_the_check(api: Api) -> None:
    assert (await api.client.get("/healthz")).json() == {"status": "ok"}
    assert (await api.client.get("/readyz")).status_code == 200

    api.ready.ready = False
    not_ready = await api.client.get("/readyz")

    assert_error(not_ready, 503, "not_ready")
    assert (await api.client.get("/healthz")).status_code == 200


class PgProxy:
    """A TCP proxy between the app and PostgreSQL that a test can cut: a real network outage."""

    def __init__(self, database_url: str) -> None:
        parts = urlsplit(database_url)
        query = dict(parse_qsl(parts.query))
        socket_dir = query.pop("host", None) or ""
        port = parts.port or int(query.pop("port", 5432))
        if socket_dir.startswith("/"):
            self._target: dict[str, Any] = {"path": f"{socket_dir}/.s.PGSQL.{port}"}
        else:
            self._target = {"host": socket_dir or parts.hostname or "127.0.0.1", "port": port}
        self._parts = parts._replace(query=urlencode(query))
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> PgProxy:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        credentials = self._parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@127.0.0.1:{port}" if credentials else f"127.0.0.1:{port}"
        self.url = urlunsplit(self._parts._replace(netloc=netloc))
        return self

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if "path" in self._target:
            up_reader, up_writer = await asyncio.open_unix_connection(self._target["path"])
        else:
            up_reader, up_writer = await asyncio.open_connection(**self._target)
        self._writers += [writer, up_writer]
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.transport.abort()


async def test_an_unreachable_database_is_503_and_nothing_is_acknowledged(
    pool: asyncpg.Pool, database_url: str, serve: Serve
) -> None:
    acme = await make_account(pool, "acme", DOMAIN)
    proxy = await PgProxy(database_url).start()
    app_pool = await database.connect(proxy.url, size=2)
    try:
        base_url = await serve(build_app(app_pool))
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
            first = await client.post("/api/v1/messages", json=message(), headers=acme.auth)
            assert first.status_code == 202, first.text
            assert (await client.get("/readyz")).status_code == 200

            proxy.cut()
            during = await client.post("/api/v1/messages", json=message(), headers=acme.auth)
            unknown_key = await client.post(
                "/api/v1/messages", json=message(), headers={"X-Api-Key": "sm_abc_def"}
            )
            not_ready = await client.get("/readyz")

        assert_error(during, 503, "database_unavailable")
        assert during.headers["retry-after"]
        assert_error(unknown_key, 503, "database_unavailable")  # never a 401 we cannot know
        assert_error(not_ready, 503, "not_ready")
        assert await pool.fetchval("SELECT count(*) FROM messages") == 1
    finally:
        app_pool.terminate()
