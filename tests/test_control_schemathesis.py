"""Schemathesis against /api/openapi.json: generated requests for every operation, checked for
server errors and for responses that break the documented schema.

The API runs in its own thread and event loop (schemathesis calls it synchronously), on a fresh
database with one company and an admin whose token signs every request.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from control.app import create_app
from control.cli import create_company, create_user
from mta import database
from mta.config import build_config
from tests.fixtures_control import CHEAP_HASHER, CHEAP_HASHING, PASSWORD, SECRET

EXAMPLES = 10
# Ending the session the requests are signed with would only test 401s from then on.
SKIP = {"logout"}


class ThreadedControl:
    """The control API under uvicorn in a thread of its own."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.server: uvicorn.Server | None = None
        self.port = 0

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        pool = await database.connect(self.url, 10)
        await create_company(pool, "fuzz")
        await pool.execute(
            "INSERT INTO sending_domains (company_id, domain)"
            " SELECT id, 'fuzz.example' FROM companies WHERE name = 'fuzz'"
        )
        await create_user(
            pool, "fuzz", "admin@fuzz.example", "admin", PASSWORD, hasher=CHEAP_HASHER
        )
        settings = {"listen": "127.0.0.1:0", "rate_limit": "100000/m", **CHEAP_HASHING}
        app = create_app(pool, build_config({"secret": "t", "control": settings}), SECRET)
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off")
        )
        task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            await asyncio.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.ready.set()
        await task
        await app.state.services.hub.stop()
        await pool.close()

    def __enter__(self) -> str:
        self.thread.start()
        assert self.ready.wait(20), "control API did not start"
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: Any) -> None:
        assert self.server is not None
        self.server.should_exit = True
        self.thread.join(10)


def test_generated_requests_find_no_server_errors_nor_schema_violations(
    database_url: str,
) -> None:
    with ThreadedControl(database_url) as base:
        login = httpx.post(
            f"{base}/api/auth/login", json={"email": "admin@fuzz.example", "password": PASSWORD}
        )
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        document = httpx.get(f"{base}/api/openapi.json").json()
        schema = schemathesis.openapi.from_dict(document)
        failures: list[str] = []
        started = time.perf_counter()
        operations = 0
        for result in schema.get_all_operations():
            operation = result.ok()
            if operation.definition.raw.get("operationId") in SKIP:
                continue
            operations += 1

            @hypothesis.settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @hypothesis.given(case=operation.as_strategy())
            def check(case: Any) -> None:
                response = case.call(base_url=base, headers=auth)
                case.validate_response(
                    response, checks=[not_a_server_error, response_schema_conformance]
                )

            try:
                check()
            except Exception as exc:  # collect every operation's first failure
                failures.append(f"{operation.label}: {str(exc)[:600]}")
        assert operations >= 60
        assert not failures, "\n\n".join(failures)
        assert time.perf_counter() - started < 120


pytestmark = pytest.mark.timeout(240)
