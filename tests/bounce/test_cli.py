"""`sendmill bounce parse` and `sendmill suppressions list|lift` as an operator runs them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from mta.cli import main

CORPUS = Path(__file__).parent.parent / "data" / "bounces"


def test_bounce_parse_prints_one_json_line_per_failed_recipient(capsys) -> None:
    assert main(["bounce", "parse", "--json", str(CORPUS / "flufl_bounce" / "yahoo_05.txt")]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [x["recipient"] for x in lines] == ["userx@example.com", "usery@example.com"]
    assert set(lines[0]) == {
        "file", "recipient", "reason", "hard", "status", "action", "diagnostic", "remote_mta"
    }  # fmt: skip
    assert (lines[0]["reason"], lines[0]["hard"]) == ("suspend", False)


def test_bounce_parse_walks_directories_and_says_null_for_complaints(capsys, tmp_path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "dsn.eml").write_bytes(
        (CORPUS / "local" / "postfix_unknown.eml").read_bytes()
    )
    (tmp_path / "ooo.eml").write_bytes(
        b"From: x@example.org\nSubject: Out of Office\n\nI am out of the office.\n"
    )
    assert main(["bounce", "parse", "--json", str(tmp_path)]) == 0
    lines = {Path(x["file"]).name: x for x in map(json.loads, capsys.readouterr().out.splitlines())}
    assert (lines["dsn.eml"]["reason"], lines["dsn.eml"]["hard"]) == ("userunknown", True)
    assert (lines["ooo.eml"]["reason"], lines["ooo.eml"]["hard"]) == ("vacation", None)


def test_bounce_parse_reports_a_missing_file(capsys, tmp_path) -> None:
    assert main(["bounce", "parse", str(tmp_path / "nope.eml")]) == 1
    assert "nope.eml" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["bounce", "parse"],
        ["bounce", "signals"],
        ["suppressions", "list"],
        ["suppressions", "lift"],
    ],
)
def test_every_bounce_command_has_help(argv, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--help"])
    assert exit_.value.code == 0
    assert "usage: sendmill" in capsys.readouterr().out


async def test_suppressions_list_and_lift(
    pool, database_url, monkeypatch, capsys, tmp_path
) -> None:
    company = await pool.fetchval("INSERT INTO companies (name) VALUES ('acme') RETURNING id")
    await pool.execute(
        "INSERT INTO suppressions (company_id, address, reason, evidence)"
        " VALUES ($1, 'zed@dest.test', 'userunknown', 'dsn: 550 5.1.1 no such user')",
        company,
    )
    monkeypatch.setenv("SENDMILL_DATABASE__URL", database_url)
    monkeypatch.setenv("SENDMILL_STATE_DIR", str(tmp_path))
    config = str(Path(__file__).parent.parent.parent / "configs" / "sendmill.toml")
    listed = await asyncio.to_thread(main, ["suppressions", "list", "--config", config, "--json"])
    assert listed == 0
    (row,) = map(json.loads, capsys.readouterr().out.splitlines())
    assert (row["address"], row["reason"]) == ("zed@dest.test", "userunknown")
    assert "550 5.1.1" in row["evidence"]
    args = ["suppressions", "lift", "zed@dest.test", "--company", "acme", "--config", config]
    assert await asyncio.to_thread(main, args) == 0
    assert await pool.fetchval("SELECT count(*) FROM suppressions") == 0
    assert await asyncio.to_thread(main, args) == 1  # nothing left to lift
    capsys.readouterr()
    await pool.execute(
        "INSERT INTO bounce_signals (domain, reason, count, last_evidence)"
        " VALUES ('dest.test', 'blocked', 4, '554 5.7.1 blocked using zen.spamhaus.org')"
    )
    signals = ["bounce", "signals", "--config", config, "--json"]
    assert await asyncio.to_thread(main, signals) == 0
    (signal,) = map(json.loads, capsys.readouterr().out.splitlines())
    assert (signal["domain"], signal["reason"], signal["count"]) == ("dest.test", "blocked", 4)


async def test_suppressions_over_the_http_api_are_scoped_to_the_keys_company(
    daemon_factory, dns_server, mx_factory, mx_port
):
    import httpx

    from mta import credentials, tenants
    from tests.support.bounce import daemon_with_mx

    daemon, _ = await daemon_with_mx(daemon_factory, dns_server, mx_factory, mx_port)
    acme = await tenants.ensure_company(daemon.db, "acme")
    other = await tenants.ensure_company(daemon.db, "other")
    for company, address in ((acme, "zed@dest.test"), (other, "yan@dest.test")):
        await daemon.db.execute(
            "INSERT INTO suppressions (company_id, address, reason, evidence)"
            " VALUES ($1, $2, 'userunknown', 'dsn: 550 5.1.1')",
            company,
            address,
        )
    key = (await credentials.create_api_key(daemon.db, acme, "test")).secret
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=f"http://{daemon.config.http.listen}") as client:
        assert (await client.get("/api/v1/suppressions")).status_code == 401
        listed = (await client.get("/api/v1/suppressions", headers=auth)).json()
        assert [s["address"] for s in listed["suppressions"]] == ["zed@dest.test"]
        assert listed["suppressions"][0]["evidence"] == "dsn: 550 5.1.1"
        gone = await client.delete("/api/v1/suppressions/yan@dest.test", headers=auth)
        assert (gone.status_code, gone.json()["error_code"]) == (404, "not_found")
        assert (
            await client.delete("/api/v1/suppressions/zed@dest.test", headers=auth)
        ).status_code == 204
    assert await daemon.db.fetchval("SELECT count(*) FROM suppressions") == 1
