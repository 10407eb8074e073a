"""The control API's Prometheus metrics: requests by endpoint template and status, logins by
result, principal-cache hits — what an operator graphs and alerts on."""

from __future__ import annotations

from prometheus_client import REGISTRY

from tests.support.fixtures_control import PASSWORD, Control


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_requests_are_counted_by_endpoint_template_and_status(control: Control) -> None:
    admin = await control.user(await control.company())
    ids = await control.fixtures(admin)
    route = "/api/email-campaigns/{id}/"
    ok = _value("sendmill_control_requests_total", route=route, method="GET", status="200")
    missing = _value("sendmill_control_requests_total", route=route, method="GET", status="404")
    timed = _value("sendmill_control_request_seconds_count", tag="campaigns")
    c = control.client
    assert (
        await c.get(f"/api/email-campaigns/{ids['campaign']}/", headers=admin.auth)
    ).status_code == 200
    assert (await c.get("/api/email-campaigns/999999999/", headers=admin.auth)).status_code == 404
    assert (
        _value("sendmill_control_requests_total", route=route, method="GET", status="200") == ok + 1
    )
    assert (
        _value("sendmill_control_requests_total", route=route, method="GET", status="404")
        == missing + 1
    )
    assert _value("sendmill_control_request_seconds_count", tag="campaigns") >= timed + 2


async def test_logins_are_counted_by_result(control: Control) -> None:
    user = await control.user(await control.company(), login=False)
    before = {r: _value("sendmill_control_logins_total", result=r) for r in ("success", "failure")}
    c = control.client
    r = await c.post("/api/auth/login", json={"email": user.email, "password": "wrong" * 4})
    assert r.status_code == 401
    r = await c.post("/api/auth/login", json={"email": user.email, "password": PASSWORD})
    assert r.status_code == 200
    assert _value("sendmill_control_logins_total", result="failure") == before["failure"] + 1
    assert _value("sendmill_control_logins_total", result="success") == before["success"] + 1
