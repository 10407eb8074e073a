"""`/api/ws`: a WebSocket streaming the caller's company events
(`email_campaign.created`, `email_campaign.sent`, `email_campaign.performance_update`).

The access token comes in the `Authorization: Bearer` header, or — browsers cannot set
headers on a WebSocket — the `access_token` query parameter. A bad token closes the
handshake with 4401 before anything is sent; a caller without `campaigns:read` gets 4403.
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.websockets import WebSocket, WebSocketDisconnect

from control.errors import ControlError
from control.responses import dumps

CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
PERMISSION = "campaigns:read"


async def events_socket(websocket: WebSocket) -> None:
    services = websocket.app.state.services
    header = websocket.headers.get("authorization")
    token = websocket.query_params.get("access_token")
    try:
        principal = await services.auth.authenticate(
            header or (f"Bearer {token}" if token else None)
        )
    except ControlError:
        await websocket.close(code=CLOSE_UNAUTHORIZED, reason="invalid or missing access token")
        return
    if not principal.can(PERMISSION):
        await websocket.close(code=CLOSE_FORBIDDEN, reason=f"permission {PERMISSION} required")
        return
    await websocket.accept()
    async with services.hub.subscribe(principal.company_id) as queue:
        await websocket.send_text(dumps({"event": "ready", "data": {}}).decode())
        receiver = asyncio.create_task(_drain(websocket))
        try:
            while not receiver.done():
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait(
                    {getter, receiver}, return_when=asyncio.FIRST_COMPLETED
                )
                if getter in done:
                    await websocket.send_text(dumps(getter.result()).decode())
                else:
                    getter.cancel()
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await receiver


async def _drain(websocket: WebSocket) -> None:
    """Read (and ignore) client messages until it disconnects."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            await websocket.receive_text()
