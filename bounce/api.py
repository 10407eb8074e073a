"""Suppressions over the HTTP API, for the company of the API key (mounted by mta/daemon.py):

    GET    /api/v1/suppressions[?address=A&limit=N]   review, with reason and evidence
    DELETE /api/v1/suppressions/{address}             lift: the address may be sent to again

Errors are mta's HTTP errors (401 without a valid key, 404 when there is no such suppression).
"""

from __future__ import annotations

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mta.credentials import CredentialStore
from mta.http_api import authenticate
from mta.http_errors import BadRequest, NotFound
from mta.queries import Queries

SQL = Queries("bounce")
MAX_LIMIT = 1000


class SuppressionsApi:
    def __init__(self, db: asyncpg.Pool, credentials: CredentialStore) -> None:
        self._db = db
        self._credentials = credentials

    @property
    def routes(self) -> list[Route]:
        return [
            Route("/api/v1/suppressions", self.list, methods=["GET"]),
            Route("/api/v1/suppressions/{address}", self.lift, methods=["DELETE"]),
        ]

    async def list(self, request: Request) -> Response:
        credential = await authenticate(request, self._credentials)
        try:
            limit = min(MAX_LIMIT, max(1, int(request.query_params.get("limit", "100"))))
        except ValueError:
            raise BadRequest("limit must be a number", field="limit") from None
        rows = await self._db.fetch(
            SQL["company-suppressions"],
            credential.company_id,
            request.query_params.get("address"),
            limit,
        )
        items = [{**dict(r), "created_at": r["created_at"].isoformat()} for r in rows]
        return JSONResponse({"suppressions": items})

    async def lift(self, request: Request) -> Response:
        credential = await authenticate(request, self._credentials)
        address = request.path_params["address"]
        if not await self._db.fetchrow(
            SQL["lift-company-suppression"], credential.company_id, address
        ):
            raise NotFound("no such suppression", address=address)
        return Response(status_code=204)
