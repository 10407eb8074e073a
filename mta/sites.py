"""A delivery site: the queue of ready messages for one destination and its connections.

Domains whose MX hosts are the same share one site, one throttle and one set of connections.
Connections are opened while there is work and the throttle allows, reused for several
messages (up to `messages_per_connection`), and closed after `idle_timeout` without work.
Jobs wait in a fair queue: transactional before bulk, round-robin between companies.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mta import metrics
from mta.budget import SharedBudget
from mta.config import DeliveryConfig, DomainLimits
from mta.connection_slots import ConnectionSlots
from mta.database import DATABASE_ERRORS
from mta.dns import DnsError, Resolver
from mta.queue import ClaimedRecipient, StoredMessage
from mta.routing import Destination, Hop
from mta.smtp_client import ConnectFailed, Envelope, SessionClosed, SmtpClientError, SmtpConnection
from mta.throttle import FairQueue, Rate, SiteThrottle

log = logging.getLogger("sendmill.delivery")


@dataclass(slots=True)
class Job:
    """One recipient ready to be sent: its row, its message and the signed data to send."""

    claim: ClaimedRecipient
    message: StoredMessage
    data: bytes
    mail_from: str
    ready_at: float = field(default_factory=time.monotonic)
    retried_on_new_connection: bool = False


# Called with (job, code, reply, mx label or None, duration in ms).
Report = Callable[[Job, int, str, "str | None", int], None]

REPLY_UNREACHABLE = "451 4.4.1 No MX host of the recipient domain could be reached: {detail}"
REPLY_SESSION_LOST = "451 4.4.2 Connection lost during the transaction: {detail}"
UNREACHABLE_PAUSE, UNREACHABLE_PAUSE_MAX = 5.0, 300.0  # seconds without trying a dead site


class Site:
    """Connections and ready jobs for one destination site."""

    def __init__(
        self,
        key: str,
        destination: Destination,
        limits: DomainLimits,
        delivery: DeliveryConfig,
        resolver: Resolver,
        helo_name: str,
        report: Report,
        share: int = 1,
        source_addresses: tuple[str, ...] = (),
        budget: SharedBudget | None = None,
        slots: ConnectionSlots | None = None,
    ) -> None:
        self.key = key
        self.destination = destination
        self.domains: set[str] = {destination.domain}
        self._delivery = delivery
        self._resolver = resolver
        self._helo = helo_name
        self._report = report
        # Connections take the pool's source addresses in turn.
        self._sources = itertools.cycle(source_addresses) if source_addresses else None
        self._budget = budget
        self._slots = slots
        rate = Rate.parse(limits.rate) if limits.rate else None
        if rate is not None and share > 1 and budget is None:
            rate = Rate(rate.count / share, rate.per)  # this process's share of the budget
        self.messages_per_connection = max(1, limits.messages_per_connection)
        # With shared slots the database holds the limit across processes and daemons; without,
        # each of this daemon's processes takes its share.
        local_connections = limits.connections if slots else limits.connections // share
        self.throttle = SiteThrottle(
            connections=max(1, local_connections),
            messages_per_connection=self.messages_per_connection,
            rate=rate,
        )
        self.queue: FairQueue = FairQueue()
        self._work = asyncio.Event()
        self._workers: set[asyncio.Task[None]] = set()
        self._idle_workers = 0
        self.unreachable_until = 0.0
        self.last_unreachable = ""
        self._failed_opens = 0  # in a row: the pause before the next try doubles with each
        self._stopping = False

    def __len__(self) -> int:
        return len(self.queue)

    @property
    def busy(self) -> bool:
        return bool(self._workers) or bool(self.queue)

    def push(self, job: Job) -> None:
        self.queue.push(job.claim.company_id, job.claim.priority, job)
        self._work.set()
        self._spawn()

    def _spawn(self) -> None:
        now = time.monotonic()
        if now < self.unreachable_until:
            self._defer_queue()
            return
        # One more connection while jobs outnumber idle connections and the throttle allows.
        while (
            len(self.queue) > self._idle_workers
            and self.throttle.can_open_connection()
            and len(self._workers) < self.throttle.effective_connections
        ):
            self.throttle.connection_opened()
            task = asyncio.create_task(self._connection())
            self._workers.add(task)
            task.add_done_callback(self._worker_done)
            if len(self.queue) <= len(self._workers):
                break

    def _worker_done(self, task: asyncio.Task[None]) -> None:
        self._workers.discard(task)
        self.throttle.connection_closed()
        if not task.cancelled() and task.exception() is not None:
            log.error("site %s: connection task failed", self.key, exc_info=task.exception())
        if self.queue:
            self._spawn()

    async def _open(self) -> SmtpConnection:
        """Connect to the first reachable host, in preference order (RFC 5321 §5.1)."""
        errors: list[str] = []
        d = self._delivery
        source = next(self._sources) if self._sources is not None else None
        for hop in self.destination.hops:
            try:
                addresses = await self._resolver.addresses(hop.host)
            except DnsError as exc:
                errors.append(f"{hop.host}: {exc}")
                continue
            for address in addresses:
                try:
                    conn = await SmtpConnection.open(
                        address,
                        hop.port,
                        helo_name=self._helo,
                        tls=hop.tls,
                        source_address=source,
                        username=hop.username,
                        password=hop.password,
                        connect_timeout=d.connect_timeout,
                        greeting_timeout=d.greeting_timeout,
                        command_timeout=d.command_timeout,
                        data_timeout=d.data_timeout,
                    )
                except Exception as exc:  # whatever a peer makes of the protocol: next host
                    metrics.SMTP_SESSIONS_OUT.labels("failed").inc()
                    if not isinstance(exc, SmtpClientError):
                        log.warning("site %s: %s failed oddly", self.key, address, exc_info=True)
                    errors.append(f"{_label(hop, address)}: {exc}")
                    if isinstance(exc, SessionClosed) and exc.code == 421:
                        self._slow_down()
                    continue
                metrics.SMTP_SESSIONS_OUT.labels("opened").inc()
                return conn
        raise ConnectFailed("; ".join(errors) or "no host to try")

    async def _next_job(self) -> Job | None:
        while not self.queue:
            if self._stopping:
                return None
            self._work.clear()
            self._idle_workers += 1
            try:
                await asyncio.wait_for(self._work.wait(), self._delivery.idle_timeout)
            except TimeoutError:
                return None
            finally:
                self._idle_workers -= 1
        return self.queue.pop()

    async def _connection(self) -> None:
        slot = await self._take_slot()
        if slot is None and self._slots is not None:
            return
        try:
            if self.queue:  # other connections may have taken the work while we waited
                await self._deliver_on_new_connection()
        finally:
            if slot is not None:
                # The slot is ours no more whatever happens here; a release the database does
                # not hear of is freed by the node's next renewal (ConnectionSlots.renew).
                try:
                    await self._slots.release(self.key, slot)
                except DATABASE_ERRORS as exc:
                    log.warning("site %s: slot release deferred (%s)", self.key, exc)

    async def _take_slot(self) -> int | None:
        """A shared connection slot, waiting while there is work; None when not shared."""
        if self._slots is None:
            return None
        try:
            return await self._slots.wait_for(
                self.key,
                lambda: self.throttle.effective_connections,
                lambda: bool(self.queue) and not self._stopping,
            )
        except DATABASE_ERRORS as exc:
            log.warning("site %s: no connection slot (%s)", self.key, exc)
            await asyncio.sleep(1.0)  # the database is away; do not spin
            return None

    async def _deliver_on_new_connection(self) -> None:
        try:
            conn = await self._open()
        except ConnectFailed as exc:
            self._mark_unreachable(str(exc))
            return
        self.unreachable_until = 0.0
        self._failed_opens = 0
        try:
            while conn.messages_sent < self.messages_per_connection:
                job = await self._next_job()
                if job is None:
                    break
                await self._wait_for_rate()
                if not await self._send(conn, job):
                    break
        finally:
            await conn.close()

    async def _wait_for_rate(self) -> None:
        """The local throttle (with its automatic slow-down), then the shared budget."""
        while True:
            delay = self.throttle.reserve_message(time.monotonic())
            if delay <= 0:
                break
            metrics.THROTTLE_WAITS.labels("rate").inc()
            await asyncio.sleep(delay)
        while self._budget is not None:
            delay = await self._budget.take()
            if delay <= 0:
                return
            metrics.THROTTLE_WAITS.labels("shared_rate").inc()
            await asyncio.sleep(delay)

    async def _send(self, conn: SmtpConnection, job: Job) -> bool:
        """Send one job; False when the connection is no longer usable."""
        envelope = Envelope(
            mail_from=job.mail_from,
            recipients=[job.claim.recipient],
            data=job.data,
            eight_bit=job.message.eight_bit,
            smtputf8=job.message.smtputf8,
        )
        started = time.monotonic()
        try:
            result = await conn.send(envelope)
        except Exception as exc:  # the session broke, or the peer broke the protocol
            if not isinstance(exc, SmtpClientError):
                log.warning("site %s: transaction failed oddly", self.key, exc_info=True)
                exc = SessionClosed(451, REPLY_SESSION_LOST.format(detail=exc))
            code = getattr(exc, "code", None) or 451
            text = getattr(exc, "text", None) or str(exc)
            reply = text if text[:3].isdigit() else REPLY_SESSION_LOST.format(detail=text)
            if code == 421:
                self._slow_down()
            if not job.retried_on_new_connection:
                # A reused connection the server dropped says nothing about this message:
                # try it once more on a fresh connection before counting a deferral.
                job.retried_on_new_connection = True
                self.push(job)
                return False
            self._report(job, code if 400 <= code < 500 else 451, reply, conn.peer, _ms(started))
            return False
        metrics.ATTEMPT_SECONDS.observe(time.monotonic() - started)
        (reply,) = result.replies
        now = time.monotonic()
        slowed = self.throttle.slowed
        if 200 <= reply.code < 300:
            self.throttle.record_success(now)
        elif 400 <= reply.code < 500:
            self.throttle.record_deferral(now, reply.code)
        self._track_slowed(slowed)
        self._report(job, reply.code, reply.text, conn.peer, _ms(started))
        return True

    def slow_down(self) -> None:
        """Back off from outside: the bounce processor saw this site refuse our reputation."""
        self._slow_down()

    def _slow_down(self) -> None:
        """A 421 or a refused connection: the site asks us to back off."""
        slowed = self.throttle.slowed
        self.throttle.record_421(time.monotonic())
        self._track_slowed(slowed)

    def _track_slowed(self, was_slowed: bool) -> None:
        if self.throttle.slowed != was_slowed:
            metrics.SITES_SLOWED.inc(1 if self.throttle.slowed else -1)
            log.info(
                "site %s %s",
                self.key,
                "slowed down" if self.throttle.slowed else "recovered",
                extra={"throttle": self.throttle.snapshot()},
            )

    def _mark_unreachable(self, detail: str) -> None:
        """No host answered (or none spoke SMTP): defer everything queued here instead of
        retrying one by one, and wait longer before each new try (5 s, 10 s... 5 min), so that
        a broken receiver costs one connection now and then, not a storm (issue 11)."""
        self._slow_down()
        now = time.monotonic()
        if now >= self.unreachable_until:  # one step per round, however many connections failed
            self._failed_opens += 1
            pause = UNREACHABLE_PAUSE * 2 ** min(10, self._failed_opens - 1)
            self.unreachable_until = now + min(UNREACHABLE_PAUSE_MAX, pause)
        self.last_unreachable = detail
        self._defer_queue()

    def _defer_queue(self) -> None:
        reply = REPLY_UNREACHABLE.format(detail=self.last_unreachable or "unreachable")
        while self.queue:
            self._report(self.queue.pop(), 451, reply, None, 0)

    async def drain(self) -> list[Job]:
        """Stop: take back jobs not yet started, and wait for connections in use."""
        self._stopping = True
        pending: list[Job] = []
        while self.queue:
            pending.append(self.queue.pop())
        self._work.set()
        if self._workers:
            await asyncio.gather(*self._workers, return_exceptions=True)
        return pending


def _label(hop: Hop, address: str) -> str:
    return hop.label if hop.host == address else f"{hop.host}[{address}]:{hop.port}"


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
