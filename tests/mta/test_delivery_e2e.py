"""End to end through the whole daemon: submission over SMTP and HTTP, MX resolution through the
stub DNS server, delivery to receiving MX servers on 127.0.0.x, DKIM verified against the TXT
record the stub serves, retries, bounces, failover, null MX, expiry and throttling."""

from __future__ import annotations

import asyncio
import email
import time

import dkim
import httpx

from mta import credentials, tenants
from mta.verp import Verp
from tests.support.delivery import (
    dns_txt,
    serve_dkim_key,
    submit,
    wait_final,
)
from tests.support.fixtures_daemon import TEST_DOMAIN


async def test_smtp_submission_is_delivered_to_the_mx_signed_and_with_a_verp_sender(
    daemon_factory, dns_server, mx_factory, mx_port
) -> None:
    mx = await mx_factory(host="127.0.0.2", port=mx_port)
    dns_server.add_mx("dest.test", [(10, "mx1.dest.test")])
    dns_server.add_a("mx1.dest.test", "127.0.0.2")
    daemon = await daemon_factory()
    serve_dkim_key(dns_server, daemon)

    reply = await submit(daemon, ["alice@dest.test", "bob@dest.test"])
    assert reply.startswith("2.0.0") or "queued" in reply
    rows = await wait_final(daemon, 2)
    assert [r["state"] for r in rows] == ["delivered", "delivered"]

    assert len(mx.messages) == 2
    verp = Verp(b"test-secret", daemon.config.bounce.domain)
    by_rcpt = {m.rcpt_tos[0]: m for m in mx.messages}
    for row in rows:
        received = by_rcpt[row["recipient"]]
        assert verp.decode(received.mail_from) == row["id"]
        assert received.tls  # opportunistic STARTTLS was used
        data = received.data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        # dkim.verify is blocking and the stub DNS runs in this loop: verify from a thread.
        verified = await asyncio.to_thread(dkim.verify, data, dnsfunc=dns_txt(dns_server.port))
        assert verified, "DKIM does not verify"
        parsed = email.message_from_bytes(received.data)
        assert "list-unsubscribe" in parsed["DKIM-Signature"].lower().replace(" ", "")
        assert ".leading dot line" in parsed.get_payload()


async def test_http_submission_is_delivered(daemon_factory, dns_server, mx_factory, mx_port):
    mx = await mx_factory(host="127.0.0.2", port=mx_port)
    dns_server.add_mx("dest.test", [(10, "mx1.dest.test")])
    dns_server.add_a("mx1.dest.test", "127.0.0.2")
    daemon = await daemon_factory()
    company = await tenants.ensure_company(daemon.db, "acme")
    key = (await credentials.create_api_key(daemon.db, company)).secret
    async with httpx.AsyncClient(base_url=f"http://{daemon.config.http.listen}") as client:
        response = await client.post(
            "/api/v1/messages",
            headers={"Authorization": f"Bearer {key}"},
            json={
                "from": f"shop@{TEST_DOMAIN}",
                "to": ["carol@dest.test"],
                "subject": "Your order",
                "text": "Thanks!",
            },
        )
        assert response.status_code == 202, response.text
        recipient_id = response.json()["recipients"][0]["id"]
        await wait_final(daemon, 1)
        status = await client.get(
            f"/api/v1/messages/recipients/{recipient_id}",
            headers={"Authorization": f"Bearer {key}"},
        )
    assert status.json()["state"] == "delivered"
    assert mx.messages[0].rcpt_tos == ["carol@dest.test"]


async def test_a_4xx_is_retried_until_it_succeeds(daemon_factory, dns_server, mx_factory, mx_port):
    mx = await mx_factory(host="127.0.0.2", port=mx_port)
    mx.fail_data_next(451, "4.3.0 try again later", times=1)
    dns_server.add_mx("dest.test", [(10, "mx1.dest.test")])
    dns_server.add_a("mx1.dest.test", "127.0.0.2")
    daemon = await daemon_factory()
    await submit(daemon, ["dave@dest.test"])
    (row,) = await wait_final(daemon, 1)
    assert row["state"] == "delivered" and row["attempts"] == 2
    codes = await daemon.db.fetch("SELECT code FROM attempts ORDER BY id")
    assert [c["code"] for c in codes] == [451, 250]


async def test_a_5xx_bounces_at_once(daemon_factory, dns_server, mx_factory, mx_port):
    mx = await mx_factory(host="127.0.0.2", port=mx_port)
    mx.fail_rcpt["nobody@dest.test"] = (550, "5.1.1 no such user")
    dns_server.add_mx("dest.test", [(10, "mx1.dest.test")])
    dns_server.add_a("mx1.dest.test", "127.0.0.2")
    daemon = await daemon_factory()
    await submit(daemon, ["nobody@dest.test", "eve@dest.test"])
    rows = await wait_final(daemon, 2)
    states = {r["recipient"]: (r["state"], r["attempts"]) for r in rows}
    assert states == {"nobody@dest.test": ("bounced", 1), "eve@dest.test": ("delivered", 1)}
    assert "5.1.1" in rows[0]["last_reply"]


async def test_delivery_fails_over_to_the_next_mx(daemon_factory, dns_server, mx_factory, mx_port):
    # 127.0.0.4 has no server: connection refused, so the second MX by preference is used.
    backup = await mx_factory(host="127.0.0.3", port=mx_port)
    dns_server.add_mx("dest.test", [(10, "mx1.dest.test"), (20, "mx2.dest.test")])
    dns_server.add_a("mx1.dest.test", "127.0.0.4")
    dns_server.add_a("mx2.dest.test", "127.0.0.3")
    daemon = await daemon_factory()
    await submit(daemon, ["frank@dest.test"])
    (row,) = await wait_final(daemon, 1)
    assert row["state"] == "delivered"
    assert len(backup.messages) == 1


async def test_a_null_mx_domain_bounces_without_any_connection(daemon_factory, dns_server):
    dns_server.add_mx("nomail.test", [(0, ".")])
    daemon = await daemon_factory()
    await submit(daemon, ["grace@nomail.test"])
    (row,) = await wait_final(daemon, 1)
    assert row["state"] == "bounced"
    assert row["last_reply"].startswith("556 5.1.10")


async def test_a_recipient_deferred_past_the_maximum_age_expires(
    daemon_factory, dns_server, mx_factory, mx_port
):
    mx = await mx_factory(host="127.0.0.2", port=mx_port)
    mx.fail_rcpt["heidi@dest.test"] = (451, "4.2.1 mailbox busy")
    dns_server.add_mx("dest.test", [(10, "mx1.dest.test")])
    dns_server.add_a("mx1.dest.test", "127.0.0.2")
    daemon = await daemon_factory(delivery={"max_age": "3s", "retry_schedule": ["1s"]})
    await submit(daemon, ["heidi@dest.test"])
    (row,) = await wait_final(daemon, 1, timeout=15)
    assert row["state"] == "expired"
    assert row["attempts"] >= 2
    assert "gave up after" in row["last_reply"]


async def test_the_rate_limit_of_a_domain_is_observed_at_the_receiver(
    daemon_factory, dns_server, mx_factory, mx_port
):
    mx = await mx_factory(host="127.0.0.2", port=mx_port)
    dns_server.add_mx("slow.test", [(10, "mx1.slow.test")])
    dns_server.add_a("mx1.slow.test", "127.0.0.2")
    daemon = await daemon_factory(limits={"slow.test": {"connections": 2, "rate": "4/s"}})
    started = time.monotonic()
    await submit(daemon, [f"u{i}@slow.test" for i in range(12)])
    rows = await wait_final(daemon, 12, timeout=30)
    elapsed = time.monotonic() - started
    assert all(r["state"] == "delivered" for r in rows)
    # 12 messages at 4/s with a burst of 4: at least 2 seconds.
    assert elapsed >= 1.9, f"12 messages at 4/s took only {elapsed:.2f}s"
    assert mx.peak_connections <= 2


async def test_metrics_show_queue_states_deliveries_and_sessions(
    daemon_factory, dns_server, mx_factory, mx_port
):
    await mx_factory(host="127.0.0.2", port=mx_port)
    dns_server.add_mx("dest.test", [(10, "mx1.dest.test")])
    dns_server.add_a("mx1.dest.test", "127.0.0.2")
    daemon = await daemon_factory(http={"metrics_sample_interval": "0.2s"})
    serve_dkim_key(dns_server, daemon)
    await submit(daemon, ["ivan@dest.test"])
    await wait_final(daemon, 1)
    await asyncio.sleep(0.5)  # the queue gauge is sampled every 0.2 s here
    async with httpx.AsyncClient(base_url=f"http://{daemon.config.http.listen}") as client:
        text = (await client.get("/metrics")).text
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
    for name in (
        'sendmill_queue_recipients{state="delivered"}',
        'sendmill_deliveries_total{outcome="delivered"}',
        "sendmill_attempt_duration_seconds_bucket",
        'sendmill_smtp_sessions_in_total{listener="submission"}',
        'sendmill_smtp_sessions_out_total{result="opened"}',
        'sendmill_dkim_signatures_total{algorithm="dkim"}',
    ):
        assert name in text, name


async def test_a_site_that_hangs_up_is_slowed_down_and_everything_still_arrives(
    daemon_factory, dns_server, mx_factory, mx_port
):
    mx = await mx_factory(host="127.0.0.2", port=mx_port)
    mx.close_after = 1  # one message per connection, then the server hangs up
    dns_server.add_mx("dest.test", [(10, "mx1.dest.test")])
    dns_server.add_a("mx1.dest.test", "127.0.0.2")
    daemon = await daemon_factory(limits={"default": {"connections": 4}})
    await submit(daemon, [f"k{i}@dest.test" for i in range(6)])
    rows = await wait_final(daemon, 6, timeout=30)
    assert [r["state"] for r in rows] == ["delivered"] * 6
    (site,) = daemon.engines[0]._sites.values()
    assert site.throttle.backoffs >= 1
    assert site.throttle.effective_connections < 4
    assert len({m.rcpt_tos[0] for m in mx.messages}) == 6


async def test_connections_take_the_source_addresses_of_the_domains_pool_in_turn(
    daemon_factory, dns_server, mx_factory, mx_port
):
    mx = await mx_factory(host="127.0.0.2", port=mx_port)
    dns_server.add_mx("dest.test", [(10, "mx1.dest.test")])
    dns_server.add_a("mx1.dest.test", "127.0.0.2")
    daemon = await daemon_factory(
        pools=[{"name": "default", "source_addresses": ["127.0.0.7", "127.0.0.8"]}],
        limits={"default": {"connections": 1, "messages_per_connection": 1}},
    )
    await submit(daemon, [f"p{i}@dest.test" for i in range(4)])
    rows = await wait_final(daemon, 4)
    assert all(r["state"] == "delivered" for r in rows)
    peers = {m.peer.split("'")[1] for m in mx.messages}
    assert peers == {"127.0.0.7", "127.0.0.8"}
