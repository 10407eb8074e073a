"""`/api/ws`: a WebSocket streaming the caller's company events
(`email_campaign.created`, `email_campaign.sent`, `email_campaign.performance_update`).

The access token comes in the `Authorization: Bearer` header, or — browsers cannot set
headers on a WebSocket — in the first message, `{"type": "auth", "access_token": "..."}`,
sent within AUTH_SECONDS by a client that opened the socket with the subprotocol
`sendmill.auth-message` (the web console does this: a token in a URL ends up in access logs
and proxies). The `access_token` query parameter is still accepted for
older clients. A bad token closes with 4401 before any event is sent (during the handshake
when the token came with it); a caller without `campaigns:read` gets 4403.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

from starlette.websockets import WebSocket, WebSocketDisconnect

from control.errors import ControlError
from control.responses import dumps

CLOSE_UNAUTHORIZED = 4401
# The credential is checked again at every principal change (logout, revocation, a user or key
# changed: heard through the principal cache within a second or so) and at least this often.
RECHECK_SECONDS = 5.0
CLOSE_FORBIDDEN = 4403
PERMISSION = "campaigns:read"
AUTH_SUBPROTOCOL = "sendmill.auth-message"
AUTH_SECONDS = 10.0
AUTH_MESSAGE_LIMIT = 4096


async def events_socket(websocket: WebSocket) -> None:
    services = websocket.app.state.services
    header = websocket.headers.get("authorization")
    token = websocket.query_params.get("access_token")
    credential = header or (f"Bearer {token}" if token else None)
    accepted = credential is None and AUTH_SUBPROTOCOL in websocket.scope.get("subprotocols", ())
    if accepted:
        await websocket.accept(subprotocol=AUTH_SUBPROTOCOL)
        credential = await _first_message_credential(websocket)
    try:
        principal = await services.auth.authenticate(credential)
    except ControlError:
        await websocket.close(code=CLOSE_UNAUTHORIZED, reason="invalid or missing access token")
        return
    if not principal.can(PERMISSION):
        await websocket.close(code=CLOSE_FORBIDDEN, reason=f"permission {PERMISSION} required")
        return
    if not accepted:
        await websocket.accept()
    async with services.hub.subscribe(principal.company_id) as queue:
        receiver = asyncio.create_task(_drain(websocket))
        principals = services.auth.principals
        change = asyncio.ensure_future(principals.changed())
        getter = asyncio.ensure_future(queue.get())
        checked = time.monotonic()
        try:
            # A client may leave at once (a browser page navigating away): not an error.
            await websocket.send_text(dumps({"event": "ready", "data": {}}).decode())
            while not receiver.done():
                done, _ = await asyncio.wait(
                    {getter, receiver, change},
                    timeout=RECHECK_SECONDS,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                # Checked however busy the event stream is: a steady flow of events must not
                # keep a revoked session's socket open.
                if change in done or time.monotonic() - checked >= RECHECK_SECONDS:
                    if change in done:
                        change = asyncio.ensure_future(principals.changed())
                    checked = time.monotonic()
                    if not await _still_valid(services, credential):
                        await websocket.close(code=CLOSE_UNAUTHORIZED, reason="session ended")
                        break
                if getter in done:
                    await websocket.send_text(dumps(getter.result()).decode())
                    getter = asyncio.ensure_future(queue.get())
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            for task in (receiver, change, getter):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await receiver


async def _first_message_credential(websocket: WebSocket) -> str | None:
    """The bearer credential of the client's first message, or None (late, malformed, gone)."""
    try:
        async with asyncio.timeout(AUTH_SECONDS):
            text = await websocket.receive_text()
    except (TimeoutError, WebSocketDisconnect, RuntimeError, KeyError):
        return None
    if len(text) > AUTH_MESSAGE_LIMIT:
        return None
    try:
        message = json.loads(text)
    except ValueError:
        return None
    if not isinstance(message, dict) or message.get("type") != "auth":
        return None
    token = message.get("access_token")
    return f"Bearer {token}" if isinstance(token, str) and token else None


async def _still_valid(services: object, credential: str | None) -> bool:
    """Whether the connection's token still authenticates (checked every RECHECK_SECONDS):
    the session may have been logged out or revoked, or the token expired."""
    try:
        await services.auth.authenticate(credential)  # type: ignore[attr-defined]
    except ControlError:
        return False
    return True


async def _drain(websocket: WebSocket) -> None:
    """Read (and ignore) client messages until it disconnects."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            await websocket.receive_text()
