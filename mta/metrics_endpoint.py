"""GET /metrics on the HTTP API and tracker listeners, which face the Internet: its series
show every tenant's activity (issue 12.8). Answered to loopback clients (the Prometheus on the
machine), or to whoever presents `http.metrics_token` as a bearer token when one is set — set
it when a reverse proxy makes every client look local. Anyone else gets the 404 of a page that
does not exist."""

from __future__ import annotations

import hmac
import ipaddress

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from mta import metrics


class MetricsEndpoint:
    def __init__(self, token: str | None = None) -> None:
        self._expected = f"Bearer {token}".encode() if token else None

    async def get(self, request: Request) -> Response:
        if not self._allowed(request):
            return PlainTextResponse("Not Found", status_code=404)
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    def _allowed(self, request: Request) -> bool:
        if self._expected is not None:
            given = request.headers.get("authorization", "").encode()
            return hmac.compare_digest(given, self._expected)
        host = request.client.host if request.client else ""
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False
