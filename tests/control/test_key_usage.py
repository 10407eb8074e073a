"""An API key's last use: shown in the key list, recorded without a write per request."""

from __future__ import annotations

from control.key_usage import KeyUsage
from tests.support.fixtures_control import Control


async def _key(control: Control) -> tuple[dict[str, str], dict[str, str], int]:
    company = await control.company()
    admin = await control.user(company, "admin")
    r = await control.client.post(
        "/api/api-keys/",
        headers=admin.auth,
        json={"name": "reporting", "permissions": ["campaigns:read"]},
    )
    assert r.status_code == 201, r.text
    assert r.json()["last_used_at"] is None
    return admin.auth, {"Authorization": f"Bearer {r.json()['key']}"}, r.json()["id"]


async def _listed_last_use(control: Control, admin: dict[str, str], key_id: int) -> str | None:
    await control.app.state.services.auth.key_usage.drain()
    keys = (await control.client.get("/api/api-keys/", headers=admin)).json()["results"]
    return next(k for k in keys if k["id"] == key_id)["last_used_at"]


async def test_the_key_list_shows_when_a_key_was_last_used(control: Control) -> None:
    admin, key, key_id = await _key(control)
    assert await _listed_last_use(control, admin, key_id) is None
    assert (await control.client.get("/api/email-campaigns/", headers=key)).status_code == 200
    first = await _listed_last_use(control, admin, key_id)
    assert first is not None
    # More requests within the minute write nothing: the recorded time stays.
    for _ in range(5):
        assert (await control.client.get("/api/email-campaigns/", headers=key)).status_code == 200
    assert await _listed_last_use(control, admin, key_id) == first


async def test_a_key_in_use_is_written_about_once_a_minute(control: Control) -> None:
    _, _, key_id = await _key(control)
    usage = KeyUsage(control.pool, every=60)
    stored = "SELECT last_used_at FROM api_keys WHERE id = $1"
    usage.used(key_id, now=1000.0)
    await usage.drain()
    assert await control.pool.fetchval(stored, key_id) is not None
    await control.pool.execute(
        "UPDATE api_keys SET last_used_at = now() - interval '2 minutes' WHERE id = $1", key_id
    )
    old = await control.pool.fetchval(stored, key_id)
    usage.used(key_id, now=1030.0)  # half a minute later: not written
    await usage.drain()
    assert await control.pool.fetchval(stored, key_id) == old
    usage.used(key_id, now=1061.0)  # a minute later: written
    await usage.drain()
    assert await control.pool.fetchval(stored, key_id) > old
    # Another daemon (its own memory) finds the stored time fresh and leaves it.
    fresh = await control.pool.fetchval(stored, key_id)
    other = KeyUsage(control.pool, every=60)
    other.used(key_id, now=5.0)
    await other.drain()
    assert await control.pool.fetchval(stored, key_id) == fresh
