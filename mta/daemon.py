"""`sendmill serve`: starts every part of the daemon and stops them gracefully on SIGTERM.

The main process runs intake (SMTP submission, the bounce listener, the HTTP API with
/metrics) and, with `delivery.processes = 1`, the delivery engine too. With more, it spawns that
many delivery processes: each claims its own batches from the queue exactly as separate daemons
would, so the CPU-bound work (DKIM, SMTP) spreads over cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import multiprocessing
import os
import signal
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from mta import database, metrics, queue, reload, site_signals, tenants
from mta.config import Config, ConfigError, load_config, parse_hostport
from mta.credentials import CredentialStore
from mta.delivery import DeliveryEngine
from mta.dkim import DkimError, DkimSigners, ensure_keys
from mta.dns import Resolver
from mta.domain_keys import KeySeal
from mta.logs import setup_logging
from mta.queue import RecipientState
from mta.secret import server_secret
from mta.sending_domains import DomainManager, ManagedSigners
from mta.service_process import run_process
from mta.submission import SubmissionPolicy
from mta.verp import Verp

log = logging.getLogger("sendmill.daemon")
# Service processes start afresh (spawn): forking a process with an event loop and open
# connections would share them.
SPAWN = multiprocessing.get_context("spawn")


def node_name(config: Config, index: int) -> str:
    """A stable name per host, state directory and process: a restarted daemon recognises its
    own leases from before a crash and takes them back at once instead of waiting them out."""
    where = hashlib.sha256(str(config.state_path.absolute()).encode()).hexdigest()[:8]
    return f"{socket.gethostname()}:{where}:{index}"


def prepare_state(config: Config) -> None:
    """Create the state directory and generate what dev mode needs (keys, certificate)."""
    config.state_path.mkdir(parents=True, exist_ok=True)
    for domain in config.sending_domains:
        for key in domain.dkim:
            record = ensure_keys(domain.domain, key.selector, Path(key.key_file), key.algorithm)
            # The record itself in the message: text logs drop `extra` fields (issue 14).
            log.info(
                'DKIM key for %s selector %s: publish %s._domainkey.%s TXT "%s"',
                domain.domain,
                key.selector,
                key.selector,
                domain.domain,
                record,
                extra={"txt": record},
            )


def build_signers(config: Config) -> DkimSigners:
    return DkimSigners(
        {
            d.domain: [(k.selector, k.key_file, k.algorithm) for k in d.dkim]
            for d in config.sending_domains
            if d.dkim
        }
    )


def build_resolver(config: Config) -> Resolver:
    return Resolver(config.dns.resolvers, config.dns.timeout, config.dns.cache_ttl_max)


def build_bounce_processor(config: Config, db: asyncpg.Pool) -> object | None:
    """The bounce package's processor (None when bounce.process is off). The one place that
    brings bounce/ into the daemon: mta code itself never imports it."""
    if not config.bounce.process:
        return None
    from bounce.processor import BounceProcessor

    secret = server_secret(config)
    return BounceProcessor(
        db,
        Verp(secret, config.bounce.domain, config.bounce.local_part),
        Verp(secret, config.bounce.domain, config.bounce.unsubscribe_local_part),
        config.bounce.complaint_local_parts,
        mailto_decoder=_tracker_mailto_decoder(config),
    )


def _tracker_mailto_decoder(config: Config) -> object | None:
    """When the tracker writes `mailto:` unsubscribe addresses into List-Unsubscribe
    (unsubscribe+<its unsubscribe token in hex>@<bounce domain>), the bounce processor reads
    them with the tracker's token codec."""
    if not config.tracker.unsubscribe_mailto:
        return None
    from bounce.processor import MailtoRequest
    from tracker.server import build_codec
    from tracker.tokens import TokenError, TokenKind

    codec = build_codec(config)

    def decode(token: str) -> MailtoRequest | None:
        try:
            t = codec.verify_hex(token, TokenKind.UNSUBSCRIBE)
        except TokenError:  # not hex, or not a valid token
            return None
        return MailtoRequest(t.recipient_id, t.company_id, t.list_id)

    return decode


def build_campaign_renderer(config: Config, db: asyncpg.Pool) -> object:
    """Campaign mail is rendered per recipient by control's renderer, with the tracker's links:
    the one place that brings the two into the delivery engine."""
    from control.campaign_delivery import CampaignRenderer
    from tracker.server import campaign_links

    return CampaignRenderer(db, campaign_links(config))


def managed_signers(config: Config, db: asyncpg.Pool, signers: DkimSigners) -> ManagedSigners:
    """Keeps `signers` current with the sending domains managed at run time."""
    return ManagedSigners(
        db,
        signers,
        KeySeal(server_secret(config)),
        config.domains.refresh_interval,
        config.domains.require_verified_dkim,
    )


async def start_engine(
    config: Config, db: asyncpg.Pool, url: str, index: int, share: int
) -> tuple[DeliveryEngine, ManagedSigners]:
    from tracker.server import delivery_preparer

    bounce = build_bounce_processor(config, db)
    signers = build_signers(config)
    keys = managed_signers(config, db, signers)
    await keys.start()
    engine = DeliveryEngine(
        config,
        db,
        build_resolver(config),
        signers,
        Verp(server_secret(config), config.bounce.domain, config.bounce.local_part),
        node_name(config, index),
        share=share,
        listen_url=url,
        preparer=delivery_preparer(config),
        renderer=build_campaign_renderer(config, db),
        observer=getattr(bounce, "observe_outcomes", None),
    )
    # Leases this node held before a crash are ours to take back now.
    await db.execute(
        "UPDATE recipients SET state = 'deferred', lease_until = NULL, leased_by = NULL,"
        " next_attempt_at = now() WHERE state = 'sending' AND leased_by = $1",
        engine.node,
    )
    await engine.start()
    return engine, keys


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


# --- delivery processes ---------------------------------------------------------------------


def delivery_process_main(config: Config, index: int, share: int) -> None:
    """Entry point of a spawned delivery process."""

    async def body(stop: asyncio.Event) -> None:
        url = await database.resolve_url(config)
        db = await database.connect(url, config.database.pool_size)
        engine, keys = await start_engine(config, db, url, index, share)
        log.info("delivery process %d started as %s", index, engine.node)
        await stop.wait()
        await engine.stop()
        await keys.stop()
        await db.close()

    run_process(config, body)


# --- the daemon -----------------------------------------------------------------------------


@dataclass
class Daemon:
    config: Config
    db: asyncpg.Pool | None = None
    url: str = ""
    engines: list[DeliveryEngine] = field(default_factory=list)
    key_refreshers: list[ManagedSigners] = field(default_factory=list)
    domain_checks: asyncio.Task[None] | None = None
    processes: list[multiprocessing.process.BaseProcess] = field(default_factory=list)
    smtp: object | None = None
    http: object | None = None
    http_task: asyncio.Task[None] | None = None
    control: Any = None  # control.server.ControlServer, when served in this process
    control_rates: Any = None  # the shared memory block of the control processes' rate table
    control_lock: Any = None  # and the lock they take to update it
    sampler_task: asyncio.Task[None] | None = None
    tracker: object | None = None
    retention: object | None = None  # tracker.retention.EventsRetention
    bounce: object | None = None  # bounce.processor.BounceProcessor
    intake_db: asyncpg.Pool | None = None  # SMTP and HTTP submission (generic plans)
    policy: SubmissionPolicy | None = None
    _announcing: set[asyncio.Task[None]] = field(default_factory=set)
    ready: bool = False

    async def start(self) -> None:
        config = self.config
        prepare_state(config)
        self.url = await database.resolve_url(config)
        self.db = await database.open_pool(config)
        await tenants.sync_sending_domains(self.db, config)
        await self._start_intake()
        await self._start_tracker()
        await self._start_delivery()
        if config.domains.verify_interval > 0:
            self.domain_checks = asyncio.create_task(self._check_domains())
        if self.bounce is not None:
            # DSNs that report a reputation refusal slow the site down like a 421 would, in
            # every delivery process and daemon (announced through the database).
            self.bounce.on_reputation = self._slow_down_site  # type: ignore[attr-defined]
        self.ready = True
        # The SMTP listeners log their own addresses; the HTTP ones are named here, once each
        # (a listener served by several processes is still one address).
        for name, address in (
            ("HTTP API (submission, /metrics)", config.http.listen),
            ("tracker", config.tracker.listen),
            ("control API", config.control.listen),
        ):
            if address:
                log.info("%s listening on %s", name, address)
        log.info("sendmill is up", extra={"hostname": config.hostname})

    async def _start_intake(self) -> None:
        from control.references import SubmissionReferences
        from mta.http_api import create_app
        from mta.smtp_server import SmtpListeners
        from tracker.server import submission_preparer

        config, db = self.config, self.db
        assert db is not None
        # Submission has its own pool whose statements are planned once (see database.connect):
        # its hot path is a handful of fixed statements.
        self.intake_db = await database.connect(
            self.url, config.database.pool_size, generic_plans=True
        )
        intake = self.intake_db
        credentials = CredentialStore(intake)
        self.policy = policy = SubmissionPolicy(
            intake,
            config.hostname,
            config.smtp.max_message_size,
            config.smtp.max_recipients,
            require_verified_dkim=config.domains.require_verified_dkim,
        )
        verp = Verp(server_secret(config), config.bounce.domain, config.bounce.local_part)
        self.bounce = build_bounce_processor(config, db)
        accepts = getattr(self.bounce, "accepts", None)
        # campaign and list ids checked against the company, then tracking: once for both
        prepare = SubmissionReferences(intake, then=submission_preparer(config, intake))
        self.smtp = SmtpListeners(config, intake, credentials, policy, verp, accepts, prepare)
        await self.smtp.start()
        if self.bounce is not None:
            self.bounce.start()  # type: ignore[attr-defined]
        app = create_app(
            db=intake,
            credentials=credentials,
            policy=policy,
            max_age=config.delivery.max_age,
            max_body_size=config.http.max_body_size,
            ready=self._is_ready,
            prepare=prepare,
            mounts=self._bounce_routes(credentials),
            metrics_token=config.http.metrics_token,
        )
        self.http_task = asyncio.create_task(self._serve_http(app))
        if config.control.listen:
            await self._start_control()
        self.sampler_task = asyncio.create_task(self._sample_queue())

    def _slow_down_site(self, domain: str) -> None:
        assert self.db is not None
        task = asyncio.create_task(site_signals.announce_slowdown(self.db, domain))
        self._announcing.add(task)
        task.add_done_callback(self._announcing.discard)

    def _bounce_routes(self, credentials: CredentialStore) -> list:
        """The bounce package's routes on the HTTP API: provider webhooks at /webhooks, and
        suppressions (review, lift) at /api/v1/suppressions."""
        from starlette.routing import Mount

        from bounce.api import SuppressionsApi
        from bounce.webhooks import Webhooks, WebhookSecrets

        b = self.config.bounce
        assert self.db is not None
        secrets = WebhookSecrets(
            b.webhook_sns_cert_url,
            b.webhook_sendgrid_public_key,
            b.webhook_mailgun_signing_key,
            b.webhook_postmark_credentials,
        )
        return [
            Mount("/webhooks", routes=Webhooks(self.db, secrets).routes),
            *SuppressionsApi(self.db, credentials).routes,
        ]

    async def _sample_queue(self) -> None:
        """Keep the queue-by-state gauge current (one GROUP BY every few seconds)."""
        assert self.db is not None
        while True:
            try:
                totals = await queue.state_totals(self.db)
                for state in RecipientState:
                    metrics.QUEUE_RECIPIENTS.labels(str(state)).set(totals.get(str(state), 0))
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("queue sampling failed: %s", exc)
            await asyncio.sleep(self.config.http.metrics_sample_interval)

    async def reload(self) -> None:
        """SIGHUP: re-read the config file, apply what can change live, log the rest as
        needing a restart. A config that does not load is refused; the running one stays.
        Nothing is closed, so no accepted mail and no open session is affected."""
        if not self.ready:
            log.warning("reload ignored: the daemon is still starting or stopping")
            return
        try:
            new = load_config(self.config.source_path)
        except ConfigError as exc:
            log.error("reload refused, the running configuration stays: %s", exc)
            return
        found = reload.changes(self.config, new)
        if not found:
            log.info("reload: the configuration is unchanged")
            return
        try:
            await self._apply(new, found)
        except (ConfigError, DkimError, OSError, ssl.SSLError) as exc:
            log.error("reload refused, the running configuration stays: %s", exc)
            return
        # Diffs stay against the running values: keys that need a restart keep being named.
        self.config = dataclasses.replace(
            self.config,
            log=new.log,
            smtp=dataclasses.replace(
                self.config.smtp,
                max_message_size=new.smtp.max_message_size,
                max_recipients=new.smtp.max_recipients,
                tls_cert=new.smtp.tls_cert,
                tls_key=new.smtp.tls_key,
            ),
            sending_domains=new.sending_domains,
            domains=dataclasses.replace(
                self.config.domains, require_verified_dkim=new.domains.require_verified_dkim
            ),
        )
        log.info(
            "configuration reloaded: applied %s; needs a restart: %s",
            ", ".join(found.live) or "nothing",
            ", ".join(found.restart) or "nothing",
        )

    async def _apply(self, new: Config, found: reload.Changes) -> None:
        """Apply the live keys of `new`; what can fail (certificates, DKIM keys) goes first."""
        assert self.db is not None
        live = set(found.live)
        if live & {"smtp.tls_cert", "smtp.tls_key"} and self.smtp is not None:
            self.smtp.reload_certificate(new)  # type: ignore[attr-defined]
        if "sending_domains" in live:
            prepare_state(new)
            signers = build_signers(new)
            await tenants.sync_sending_domains(self.db, new)
            for keys in self.key_refreshers:
                keys.signers.set_configured(signers)
        if self.policy is not None:
            self.policy.max_message_size = new.smtp.max_message_size
            self.policy.max_recipients = new.smtp.max_recipients
            self.policy.require_verified_dkim = new.domains.require_verified_dkim
        if live & {"log.level", "log.format"}:
            setup_logging(new.log.level, new.log.format)

    async def _check_domains(self) -> None:
        """The periodic live DNS check of the sending domains managed at run time."""
        assert self.db is not None
        manager = DomainManager(self.db, self.config, KeySeal(server_secret(self.config)))
        while True:
            try:
                await manager.verify_due()
            except Exception as exc:  # one failed round must not end the checks
                log.warning("sending-domain DNS check failed: %s", exc)
            await asyncio.sleep(min(self.config.domains.verify_interval, 60.0))

    async def _serve_http(self, app: object) -> None:
        import uvicorn

        host, port = parse_hostport(self.config.http.listen, 8025, "http.listen")
        server = uvicorn.Server(
            uvicorn.Config(
                app, host=host, port=port, log_config=None, access_log=False, lifespan="off"
            )
        )
        server.capture_signals = contextlib.nullcontext  # the daemon owns SIGTERM
        self.http = server
        await server.serve()

    async def _start_control(self) -> None:
        """The control API (control/) on its own listener: in this process on the daemon's
        pool, or in `control.processes` processes sharing one request-rate table."""
        from control.ratelimit import SharedRateTable
        from control.server import ControlServer, control_process_main

        config = self.config
        if config.control.processes == 1:
            assert self.db is not None
            self.control = ControlServer(config, self.db)
            await self.control.start()
            return
        # Kept for the daemon's lifetime: a spawned process rebuilds the lock by name.
        self.control_lock = lock = SPAWN.Lock()
        self.control_rates = SharedRateTable.create_block()
        for index in range(config.control.processes):
            rates = (self.control_rates.name, lock)
            self._spawn(control_process_main, (config, index, *rates), f"control-{index}")

    def _spawn(self, target: Callable[..., None], args: tuple, name: str) -> None:
        """A service process of this daemon, stopped with it (SIGTERM, then SIGKILL)."""
        process = SPAWN.Process(target=target, args=args, name=f"sendmill-{name}", daemon=False)
        process.start()
        self.processes.append(process)

    async def _is_ready(self) -> bool:
        if not self.ready or self.db is None:
            return False
        try:
            await self.db.fetchval("SELECT 1")
        except (OSError, asyncpg.PostgresError):
            return False
        return all(p.is_alive() for p in self.processes)

    async def _start_tracker(self) -> None:
        """The tracker's own listener: in this process, or in `tracker.processes` processes;
        and the purge of old tracking events (in every daemon: they take turns)."""
        from tracker.retention import EventsRetention
        from tracker.server import TrackerServer, tracker_process_main

        config = self.config
        assert self.db is not None
        self.retention = EventsRetention(self.db, config.tracker.events_retention)
        self.retention.start()
        if not config.tracker.listen:
            return
        if config.tracker.processes == 1:
            self.tracker = TrackerServer(config, self.db)
            await self.tracker.start()
            return
        for index in range(config.tracker.processes):
            self._spawn(tracker_process_main, (config, index), f"tracker-{index}")

    async def _start_delivery(self) -> None:
        config, db = self.config, self.db
        assert db is not None
        count = config.delivery.processes
        if count == 1:
            engine, keys = await start_engine(config, db, self.url, 0, 1)
            self.engines.append(engine)
            self.key_refreshers.append(keys)
            return
        for index in range(count):
            self._spawn(delivery_process_main, (config, index, count), f"delivery-{index}")

    async def stop(self, grace: float = 30.0) -> None:
        """Stop accepting, finish in-flight transactions, release leases."""
        self.ready = False
        log.info("sendmill is stopping")
        for task in (self.sampler_task, self.domain_checks):
            if task is not None:
                task.cancel()
        if self.smtp is not None:
            await self.smtp.stop(grace)
        if self.bounce is not None:
            await self.bounce.stop()  # type: ignore[attr-defined]
        if self.http is not None:
            self.http.should_exit = True
        if self.http_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.http_task, grace)
        if self.control is not None:
            await self.control.stop(grace)
        for engine in self.engines:
            await engine.stop(grace)
        for keys in self.key_refreshers:
            await keys.stop()
        if self.tracker is not None:
            await self.tracker.stop(grace)
        if self.retention is not None:
            await self.retention.stop()  # type: ignore[attr-defined]
        for process in self.processes:
            if process.is_alive() and process.pid:
                os.kill(process.pid, signal.SIGTERM)
        for process in self.processes:
            await asyncio.to_thread(process.join, grace + 5)
            if process.is_alive():
                process.kill()
        if self.control_rates is not None:
            self.control_rates.close()
            self.control_rates.unlink()
        if self.intake_db is not None:
            await self.intake_db.close()
        if self.db is not None:
            await self.db.close()
        log.info("sendmill stopped")


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; keep asyncio if absent
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def _serve(config: Config) -> None:
    daemon = Daemon(config)
    stop = _stop_event()
    reloads: set[asyncio.Task[None]] = set()

    def on_hangup() -> None:
        task = asyncio.create_task(daemon.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    # Installed before start: SIGHUP's default action would end the daemon (exit 129).
    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_hangup)
    await daemon.start()
    await stop.wait()
    await daemon.stop()


def serve(config: Config) -> int:
    """Run the daemon until SIGTERM or SIGINT; returns the exit status."""
    setup_logging(config.log.level, config.log.format)
    _install_uvloop()
    asyncio.run(_serve(config))
    return 0
