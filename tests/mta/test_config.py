"""Config loading: the shipped dev config loads, unknown keys are refused, env overrides win."""

from pathlib import Path

import pytest

from mta.config import ConfigError, build_config, load_config, parse_duration

ROOT = Path(__file__).resolve().parent.parent.parent


def test_shipped_configs_load() -> None:
    config = load_config(ROOT / "configs/sendmill.toml", environ={})
    assert config.database.url is None  # embedded PostgreSQL by default
    assert config.smtp.listen.startswith("127.0.0.1:")
    load_config(ROOT / "configs/production.example.toml", environ={})


def test_unknown_keys_are_refused_with_their_name() -> None:
    with pytest.raises(ConfigError, match=r"smtp: unknown key\(s\) lisen"):
        build_config({"smtp": {"lisen": "127.0.0.1:25"}})


def test_environment_overrides_the_file() -> None:
    config = load_config(
        ROOT / "configs/sendmill.toml",
        environ={
            "SENDMILL_DATABASE__URL": "postgresql://db.internal/sendmill",
            "SENDMILL_DELIVERY__PROCESSES": "3",
            "SENDMILL_HOSTNAME": "mx1.example.com",
        },
    )
    assert config.database.url == "postgresql://db.internal/sendmill"
    assert config.delivery.processes == 3
    assert config.hostname == "mx1.example.com"


def test_durations_and_routes() -> None:
    assert parse_duration("5m") == 300
    assert parse_duration("2h") == 7200
    with pytest.raises(ConfigError):
        parse_duration("soon")
    config = build_config(
        {
            "routes": [
                {"domain": "*.example.com", "host": "127.0.0.2:2600"},
                {"domain": "example.com", "host": "[::1]:2601", "tls": "none"},
            ]
        }
    )
    assert config.route_for("mail.example.com").host == "127.0.0.2"
    assert config.route_for("example.com").port == 2601
    assert config.route_for("other.org") is None
    with pytest.raises(ConfigError, match="tls"):
        build_config({"routes": [{"domain": "x.org", "host": "a", "tls": "maybe"}]})


def test_unicode_sending_domains_are_stored_in_idna_form() -> None:
    config = build_config({"sending_domains": [{"domain": "Bücher.Example"}]})
    assert config.sending_domains[0].domain == "xn--bcher-kva.example"
    assert config.sending_domain("bücher.example") is config.sending_domains[0]
