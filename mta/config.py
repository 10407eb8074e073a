"""Sendmill configuration: one TOML file, environment overrides, strict validation.

Every key is documented in `configs/sendmill.toml`. Unknown keys are refused so a typo never
silently falls back to a default. Environment variables override the file:
`SENDMILL_<SECTION>__<KEY>` (double underscore between levels), e.g.
`SENDMILL_DATABASE__URL=postgresql://...` or `SENDMILL_HOSTNAME=mx1.example.com`; the value is
read as a TOML value when it parses as one (numbers, booleans, arrays), else as a string.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mta.dns import to_ascii

DEFAULT_CONFIG = Path("configs/sendmill.toml")
ENV_PREFIX = "SENDMILL_"


class ConfigError(Exception):
    """The configuration is invalid; the message names the key and the problem."""


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: str | int | float, key: str = "duration") -> float:
    """Parse `"90s"`, `"5m"`, `"2h"`, `"5d"` or a number of seconds into seconds."""
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a duration like '5m', got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ConfigError(
            f"{key}: expected a duration like '30s', '5m', '2h' or '5d', got {value!r}"
        )
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def parse_hostport(value: str, default_port: int, key: str) -> tuple[str, int]:
    """Parse `host:port`, `host` or `[v6]:port`."""
    value = value.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest.lstrip(":") or str(default_port)
    elif value.count(":") == 1:
        host, port = value.split(":")
    else:
        host, port = value, str(default_port)
    try:
        return host, int(port)
    except ValueError:
        raise ConfigError(f"{key}: bad port in {value!r}") from None


@dataclass(frozen=True)
class DatabaseConfig:
    url: str | None = None
    pool_size: int = 10
    apply_migrations: bool = True


@dataclass(frozen=True)
class SmtpConfig:
    listen: str = "127.0.0.1:2587"
    listen_tls: str | None = "127.0.0.1:2465"
    tls_cert: str | None = None
    tls_key: str | None = None
    max_message_size: int = 25 * 1024 * 1024
    max_recipients: int = 1000
    plaintext_auth_on_loopback: bool = True
    timeout: float = 300.0
    # Client networks that may submit without AUTH, like Postfix's mynetworks: hosts you run.
    trusted_networks: tuple[str, ...] = ()


@dataclass(frozen=True)
class HttpConfig:
    listen: str = "127.0.0.1:8025"
    max_body_size: int = 36 * 1024 * 1024
    # How often the queue-by-state gauge on /metrics is sampled (one GROUP BY over the queue).
    metrics_sample_interval: float = 5.0
    # /metrics (HTTP API and tracker) answers loopback clients only; with a token, whoever
    # sends "Authorization: Bearer <token>" instead (behind a local reverse proxy, set one)
    metrics_token: str | None = None


@dataclass(frozen=True)
class BounceConfig:
    domain: str = "bounces.localhost"
    listen: str | None = "127.0.0.1:2525"
    local_part: str = "b"
    secret: str | None = None
    # The bounce processor (bounce/): run it in this daemon; where complaints (ARF feedback
    # loops) and mailto: unsubscribe requests (unsubscribe+TOKEN@domain) arrive.
    process: bool = True
    complaint_local_parts: tuple[str, ...] = ("fbl",)
    unsubscribe_local_part: str = "unsubscribe"
    # Provider webhooks at /webhooks/<provider> on the HTTP API; '' leaves one switched off.
    webhook_sns_cert_url: str = ""  # regex the SNS SigningCertURL must match
    webhook_sendgrid_public_key: str = ""
    webhook_mailgun_signing_key: str = ""
    webhook_postmark_credentials: str = ""  # "user:password"


@dataclass(frozen=True)
class DeliveryConfig:
    port: int = 25
    processes: int = 1
    batch_size: int = 200
    lease: float = 300.0
    poll_interval: float = 1.0
    retry_schedule: tuple[float, ...] = (300, 600, 1800, 3600, 7200, 14400)
    max_age: float = 5 * 86400
    connect_timeout: float = 30.0
    # RFC 5321 §4.5.3.2 minimum timeouts, seconds.
    greeting_timeout: float = 300.0
    command_timeout: float = 300.0
    data_timeout: float = 600.0
    idle_timeout: float = 5.0


@dataclass(frozen=True)
class DnsConfig:
    resolvers: tuple[str, ...] = ()
    timeout: float = 5.0
    cache_ttl_max: float = 3600.0


@dataclass(frozen=True)
class DomainLimits:
    """Delivery limits for one destination (a domain or, once MX-resolved, a site)."""

    connections: int = 10
    messages_per_connection: int = 100
    rate: str | None = None  # "600/m", "10000/h"; None = unlimited


@dataclass(frozen=True)
class Route:
    """A static route: mail for `domain` goes to `host:port` instead of its MX hosts."""

    domain: str  # "example.com", "*.example.com" or "*"
    host: str
    port: int = 25
    tls: str = "opportunistic"  # none | opportunistic | required | implicit
    username: str | None = None
    password: str | None = None

    def matches(self, domain: str) -> bool:
        if self.domain == "*":
            return True
        if self.domain.startswith("*."):
            return domain.endswith(self.domain[1:]) or domain == self.domain[2:]
        return domain == self.domain


@dataclass(frozen=True)
class DkimKey:
    selector: str
    key_file: str
    algorithm: str = "rsa-sha256"  # or ed25519-sha256


@dataclass(frozen=True)
class SendingDomain:
    domain: str
    company: str = "default"
    pool: str = "default"
    dkim: tuple[DkimKey, ...] = ()


@dataclass(frozen=True)
class Pool:
    name: str
    source_addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrackerConfig:
    """Opens, clicks and unsubscribe (the `tracker` package); documented in the config files."""

    listen: str | None = "127.0.0.1:8090"
    base_url: str = "http://127.0.0.1:8090"
    secret: str | None = None
    previous_secret: str | None = None
    processes: int = 1
    trust_forwarded_for: bool = False
    buffer_size: int = 500_000
    batch_size: int = 500
    flush_interval: float = 0.1
    unsubscribe_mailto: bool = True
    machine_rules: str | None = None
    # tracking events older than this are deleted (hourly, in batches); 0 keeps them all
    events_retention: float = 400 * 86400.0


@dataclass(frozen=True)
class ControlConfig:
    """The control API (control/): its own listener, tokens, throttles and limits."""

    listen: str | None = None  # absent: not served (configs/sendmill.toml sets 127.0.0.1:8080)
    processes: int = 1  # 1: in the daemon's process; more: spawned, sharing the listener
    # HS256 key for access tokens; absent: derived from the server secret.
    jwt_secret: str | None = None
    access_token_ttl: float = 900.0
    refresh_token_ttl: float = 30 * 86400.0
    # argon2id cost (RFC 9106): iterations and memory per password hash
    password_time_cost: int = 3
    password_memory_kib: int = 65536
    # failed logins in a window (login_lockout) before 429: per account from one client
    # address, per address over every account, per account from everywhere
    # (control/login_throttle.py)
    login_max_failures: int = 5
    login_max_failures_per_address: int = 20
    login_max_failures_per_account: int = 100
    login_lockout: float = 900.0
    rate_limit: str = "1200/m"
    rate_burst: int = 60
    max_body_size: int = 1024 * 1024
    max_import_size: int = 512 * 1024 * 1024
    # SpamAssassin's spamd ("host:port") for content spam scores; absent: built-in rules.
    spamd: str | None = None
    # content checks (HTML parse, MJML, spam rules) run in this many worker processes, each
    # check stopped and refused past content_check_timeout (control/content_pool.py)
    content_check_processes: int = 2
    content_check_timeout: float = 10.0
    # campaign counters recomputed and performance_update events published this often; 0: off
    performance_interval: float = 15.0
    # campaign sends: list members considered per enqueue transaction (control/campaign_send)
    enqueue_chunk: int = 10_000


@dataclass(frozen=True)
class DomainsConfig:
    """Sending domains managed at run time (mta/sending_domains.py)."""

    # false: an added domain sends before its DKIM record verifies (development only)
    require_verified_dkim: bool = True
    verify_interval: float = 3600.0  # live DNS check of every managed domain; 0: off
    rotation_overlap: float = 7 * 86400.0  # a rotated-out key stays published this long
    refresh_interval: float = 2.0  # how soon every daemon signs with a new or rotated key


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    format: str = "json"  # json | text


@dataclass(frozen=True)
class Config:
    hostname: str = "localhost"
    state_dir: str = "var"
    secret: str | None = None
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    bounce: BounceConfig = field(default_factory=BounceConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    dns: DnsConfig = field(default_factory=DnsConfig)
    log: LogConfig = field(default_factory=LogConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    domains: DomainsConfig = field(default_factory=DomainsConfig)
    limits: dict[str, DomainLimits] = field(default_factory=lambda: {"default": DomainLimits()})
    routes: tuple[Route, ...] = ()
    sending_domains: tuple[SendingDomain, ...] = ()
    pools: tuple[Pool, ...] = ()
    source_path: str | None = None

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir)

    def limits_for(self, domain: str) -> DomainLimits:
        return self.limits.get(domain) or self.limits["default"]

    def route_for(self, domain: str) -> Route | None:
        exact = [r for r in self.routes if r.domain == domain]
        if exact:
            return exact[0]
        wild = sorted(
            (r for r in self.routes if r.domain != "*" and r.matches(domain)),
            key=lambda r: -len(r.domain),
        )
        if wild:
            return wild[0]
        return next((r for r in self.routes if r.domain == "*"), None)

    def sending_domain(self, domain: str) -> SendingDomain | None:
        domain = to_ascii(domain)
        return next((d for d in self.sending_domains if d.domain == domain), None)

    def pool(self, name: str) -> Pool:
        return next((p for p in self.pools if p.name == name), Pool(name=name))


# --- loading -------------------------------------------------------------------------------

_SECTIONS = {
    "database": DatabaseConfig,
    "smtp": SmtpConfig,
    "http": HttpConfig,
    "bounce": BounceConfig,
    "delivery": DeliveryConfig,
    "dns": DnsConfig,
    "log": LogConfig,
    "tracker": TrackerConfig,
    "control": ControlConfig,
    "domains": DomainsConfig,
}
_DURATION_KEYS = {
    "delivery": {
        "lease",
        "poll_interval",
        "max_age",
        "connect_timeout",
        "greeting_timeout",
        "command_timeout",
        "data_timeout",
        "idle_timeout",
    },
    "smtp": {"timeout"},
    "http": {"metrics_sample_interval"},
    "dns": {"timeout", "cache_ttl_max"},
    "tracker": {"flush_interval", "events_retention"},
    "control": {
        "access_token_ttl",
        "refresh_token_ttl",
        "login_lockout",
        "performance_interval",
        "content_check_timeout",
    },
    "domains": {"verify_interval", "rotation_overlap", "refresh_interval"},
}


def _build(
    cls: type, data: dict[str, Any], where: str, durations: frozenset[str] | set[str] = frozenset()
) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for name, value in data.items():
        key = f"{where}.{name}" if where else name
        if name in durations:
            value = parse_duration(value, key)
        elif name == "retry_schedule":
            if not isinstance(value, list) or not value:
                raise ConfigError(f"{key}: expected a non-empty list of durations")
            value = tuple(parse_duration(v, key) for v in value)
        elif name == "trusted_networks":
            value = _networks(value, key)
        elif name in ("resolvers", "source_addresses", "complaint_local_parts"):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{key}: expected a list of strings")
            value = tuple(value)
        else:
            expected = known[name].type
            value = _check_scalar(value, expected, key)
        values[name] = value
    return cls(**values)


def _networks(value: Any, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f'{key}: expected a list of networks such as "10.0.0.0/8"')
    try:
        return tuple(str(ipaddress.ip_network(v, strict=False)) for v in value)
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from None


def _check_scalar(value: Any, expected: Any, key: str) -> Any:
    text = str(expected)
    if text.startswith("int") and "str" not in text:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
    elif text.startswith("float"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        value = float(value)
    elif text == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
    elif text.startswith("str") and value is not None and not isinstance(value, str):
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value


def _env_overrides(data: dict[str, Any], environ: dict[str, str]) -> None:
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name in ("SENDMILL_CONFIG",):
            continue
        if name.startswith("SENDMILL_TEST_"):
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{name}: {part} is not a table")
        node[path[-1]] = value


def build_config(data: dict[str, Any], source_path: str | None = None) -> Config:
    """Validate a parsed TOML document into a Config."""
    data = dict(data)
    top: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        if name in data:
            top[name] = _build(cls, data.pop(name), name, _DURATION_KEYS.get(name, set()))
    if "limits" in data:
        raw = data.pop("limits")
        if not isinstance(raw, dict):
            raise ConfigError("limits: expected a table of domains")
        limits = {"default": DomainLimits()}
        for domain, spec in raw.items():
            limits[domain.lower()] = _build(DomainLimits, spec, f"limits.{domain}")
        for domain, spec in limits.items():
            if spec.rate is not None:
                _validate_rate(spec.rate, f"limits.{domain}.rate")
        top["limits"] = limits
    if "routes" in data:
        routes = []
        for i, spec in enumerate(data.pop("routes")):
            where = f"routes[{i}]"
            spec = dict(spec)
            if "host" not in spec or "domain" not in spec:
                raise ConfigError(f"{where}: 'domain' and 'host' are required")
            host, port = parse_hostport(spec.pop("host"), spec.pop("port", 25), f"{where}.host")
            route = _build(Route, {**spec, "host": host, "port": port}, where)
            if route.tls not in ("none", "opportunistic", "required", "implicit"):
                raise ConfigError(
                    f"{where}.tls: expected none, opportunistic, required or implicit, "
                    f"got {route.tls!r}"
                )
            routes.append(dataclasses.replace(route, domain=route.domain.lower()))
        top["routes"] = tuple(routes)
    if "sending_domains" in data:
        domains = []
        for i, spec in enumerate(data.pop("sending_domains")):
            where = f"sending_domains[{i}]"
            spec = dict(spec)
            keys = tuple(
                _build(DkimKey, k, f"{where}.dkim[{j}]") for j, k in enumerate(spec.pop("dkim", []))
            )
            for key in keys:
                if key.algorithm not in ("rsa-sha256", "ed25519-sha256"):
                    raise ConfigError(
                        f"{where}.dkim: algorithm must be rsa-sha256 or ed25519-sha256, "
                        f"got {key.algorithm!r}"
                    )
            if "domain" not in spec:
                raise ConfigError(f"{where}: 'domain' is required")
            domain = _build(SendingDomain, spec, where)
            # Stored as mail carries them: lower-case IDNA, so a Unicode domain still matches.
            ascii_domain = to_ascii(domain.domain)
            domains.append(dataclasses.replace(domain, domain=ascii_domain, dkim=keys))
        top["sending_domains"] = tuple(domains)
    if "pools" in data:
        top["pools"] = tuple(
            _build(Pool, spec, f"pools[{i}]") for i, spec in enumerate(data.pop("pools"))
        )
    config = _build(Config, {**data, **top, "source_path": source_path}, "")
    _validate(config)
    return config


def _validate_rate(spec: str, key: str) -> None:
    from mta.throttle import Rate, RateError

    try:
        Rate.parse(spec)
    except RateError as exc:
        raise ConfigError(f"{key}: {exc}") from None


def _validate(config: Config) -> None:
    if config.delivery.processes < 1:
        raise ConfigError("delivery.processes: must be at least 1")
    if not config.bounce.domain:
        raise ConfigError("bounce.domain: required")
    for name in ("listen",):
        parse_hostport(getattr(config.smtp, name), 587, f"smtp.{name}")
    if config.http.metrics_sample_interval <= 0:
        raise ConfigError("http.metrics_sample_interval: must be a positive duration")
    if config.tracker.processes < 1:
        raise ConfigError("tracker.processes: must be at least 1")
    if config.control.processes < 1:
        raise ConfigError("control.processes: must be at least 1")
    if config.control.content_check_processes < 1 or config.control.content_check_timeout <= 0:
        raise ConfigError("control.content_check_processes/timeout: must be at least 1 / over 0")
    if config.control.enqueue_chunk < 1:
        raise ConfigError("control.enqueue_chunk: must be at least 1")
    if config.control.performance_interval < 0:
        raise ConfigError("control.performance_interval: must be a duration, or 0 for off")
    if config.tracker.events_retention < 0:
        raise ConfigError("tracker.events_retention: must be a duration, or 0 to keep all")
    if not config.tracker.base_url.startswith(("https://", "http://")):
        raise ConfigError("tracker.base_url: must be an http(s):// URL")
    if config.control.listen is not None:
        parse_hostport(config.control.listen, 8080, "control.listen")
    _validate_rate(config.control.rate_limit, "control.rate_limit")
    if config.domains.refresh_interval <= 0:
        raise ConfigError("domains.refresh_interval: must be a positive duration")
    if config.log.format not in ("json", "text"):
        raise ConfigError("log.format: expected json or text")


def load_config(path: str | Path | None = None, environ: dict[str, str] | None = None) -> Config:
    """Load the config: `path`, else `$SENDMILL_CONFIG`, else configs/sendmill.toml."""
    environ = dict(os.environ if environ is None else environ)
    path = Path(path or environ.get("SENDMILL_CONFIG") or DEFAULT_CONFIG)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    _env_overrides(data, environ)
    return build_config(data, str(path))
