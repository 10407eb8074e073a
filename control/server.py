"""Running the control API: its own listener, inside the daemon or in several processes.

With `[control] processes = 1` the daemon's main process serves the control API beside
intake, on the daemon's pool. With more, the daemon spawns that many processes; each binds the
same address with SO_REUSEPORT (the kernel spreads connections over them) and opens its own
pool. They share the request-rate table (shared memory, control/ratelimit.py) and learn of
revocations from PostgreSQL (control/principal_cache.py), so a user sees one API whichever
process answers. One process serves about 550 requests a second of bench/api's mix on this
hardware; the API's p95 under 500 users wants two.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg

from control.app import create_app
from control.campaign_runner import CampaignRunner
from control.engagement import EngagementRollup
from control.performance import PerformanceRollup
from control.ratelimit import SharedRateTable
from mta import database
from mta.config import Config
from mta.reuseport import ReuseportServer
from mta.secret import server_secret
from mta.service_process import run_process

log = logging.getLogger("sendmill.control")


class ControlServer:
    """One process's control API: the app under uvicorn on a SO_REUSEPORT socket."""

    def __init__(
        self, config: Config, db: asyncpg.Pool, rates: SharedRateTable | None = None
    ) -> None:
        self.config = config
        self.app = create_app(db, config, server_secret(config), rates)
        self.http = ReuseportServer(self.app, "control-http")
        self.performance = PerformanceRollup(db, config.control.performance_interval)
        self.campaigns = CampaignRunner(
            db, config.delivery.max_age, chunk=config.control.enqueue_chunk
        )
        # segments' engagement facts follow the events on the same period as the counters
        self.engagement = EngagementRollup(db, config.control.performance_interval)

    async def start(self) -> None:
        assert self.config.control.listen is not None
        await self.http.start(self.config.control.listen, 8080, "control.listen")
        self.performance.start()
        self.campaigns.start()
        self.engagement.start()

    async def stop(self, grace: float = 10.0) -> None:
        await self.performance.stop()
        await self.campaigns.stop()
        await self.engagement.stop()
        await self.http.stop(grace)
        services = self.app.state.services
        await services.hub.stop()
        await services.auth.principals.stop()
        await services.auth.key_usage.drain()  # API keys' last use, still being written


# --- spawned control API processes -----------------------------------------------------------


def control_process_main(config: Config, index: int, rates_name: str, rates_lock: Any) -> None:
    """Entry point of a spawned control API process."""

    async def body(stop: asyncio.Event) -> None:
        rates = SharedRateTable(rates_name, rates_lock)
        url = await database.resolve_url(config)
        db = await database.connect(url, config.database.pool_size)
        server = ControlServer(config, db, rates)
        await server.start()
        log.info("control API process %d listening on %s", index, config.control.listen)
        await stop.wait()
        await server.stop()
        await db.close()
        rates.close()

    run_process(config, body)
