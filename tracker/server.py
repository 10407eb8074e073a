"""Running the tracker: its own listener, inside the daemon or in several processes.

With `[tracker] processes = 1` the daemon's main process serves the tracker beside intake.
With more, the daemon spawns that many processes; each binds the same address with
SO_REUSEPORT (the kernel spreads connections over them), opens its own small connection pool
and writes its own events. One Python process tops out near 10,000 pixel requests a second on
this hardware, so a busy tracker wants one process per core.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from mta import database
from mta.config import Config
from mta.reuseport import ReuseportServer
from mta.secret import server_secret
from mta.service_process import run_process
from tracker.app import TrackerApp, create_app
from tracker.events import EventWriter
from tracker.machine import MachineRules
from tracker.prepare import CampaignLinks, DeliveryPreparer, Links, SubmissionPreparer
from tracker.tokens import TokenCodec

log = logging.getLogger("sendmill.tracker")
PROCESS_POOL_SIZE = 3


def build_codec(config: Config) -> TokenCodec:
    """Tokens under `[tracker] secret`, else the server secret; `previous_secret` verifies."""
    t = config.tracker
    secret = t.secret.encode() if t.secret else server_secret(config)
    previous = t.previous_secret.encode() if t.previous_secret else None
    return TokenCodec(secret, previous)


def build_links(config: Config) -> Links:
    mailto = None
    if config.tracker.unsubscribe_mailto:
        mailto = (config.bounce.unsubscribe_local_part, config.bounce.domain)
    return Links(config.tracker.base_url.rstrip("/"), mailto)


def delivery_preparer(config: Config) -> DeliveryPreparer:
    """The delivery engine's per-recipient hook."""
    return DeliveryPreparer(build_codec(config), build_links(config))


def campaign_links(config: Config) -> CampaignLinks:
    """The campaign renderer's tracked links, under the same codec and base URL."""
    return CampaignLinks(build_codec(config), build_links(config))


def submission_preparer(config: Config, db: asyncpg.Pool) -> SubmissionPreparer:
    """The submission hook of both front ends (HTTP API and SMTP)."""
    return SubmissionPreparer(db, build_codec(config))


class TrackerServer:
    """One process's tracker: the app under uvicorn on a SO_REUSEPORT socket, and its writer."""

    def __init__(self, config: Config, db: asyncpg.Pool) -> None:
        t = config.tracker
        self.config = config
        self.writer = EventWriter(db, t.buffer_size, t.batch_size, t.flush_interval)
        self.app = create_app(
            db=db,
            codec=build_codec(config),
            links=build_links(config),
            writer=self.writer,
            rules=MachineRules.load(t.machine_rules),
            trust_forwarded=t.trust_forwarded_for,
            metrics_token=config.http.metrics_token,
        )
        self.http = ReuseportServer(self.app, "tracker-http", _http_protocol(self.app))

    async def start(self) -> None:
        assert self.config.tracker.listen is not None
        self.writer.start()
        await self.http.start(self.config.tracker.listen, 8090, "tracker.listen")

    async def stop(self, grace: float = 10.0) -> None:
        await self.http.stop(grace)
        await self.writer.stop(grace)


def _http_protocol(app: TrackerApp) -> type | str:
    """The fast lane on uvicorn's httptools protocol; plain h11 if httptools is missing."""
    try:
        from tracker.fastlane import protocol_for
    except ImportError:  # pragma: no cover - httptools is a dependency
        return "h11"
    return protocol_for(app.hot)


# --- spawned tracker processes --------------------------------------------------------------


def tracker_process_main(config: Config, index: int) -> None:
    """Entry point of a spawned tracker process."""

    async def body(stop: asyncio.Event) -> None:
        url = await database.resolve_url(config)
        db = await database.connect(url, PROCESS_POOL_SIZE)
        server = TrackerServer(config, db)
        await server.start()
        log.info("tracker process %d listening on %s", index, config.tracker.listen)
        await stop.wait()
        await server.stop()
        await db.close()

    run_process(config, body)
