"""The delivery engine of one process: claims due recipients, routes them to sites, signs, and
records every outcome.

The claim loop leases batches from the queue (fair between companies, transactional first),
checks suppressions and expiry, resolves each domain to its site and hands the jobs over; the
sites deliver and report back; outcomes are written in batches. Leases are renewed while held
and expired leases of dead nodes are taken back. On stop, unstarted jobs are released and
in-flight transactions finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Protocol

import asyncpg

from mta import metrics, queue, site_signals
from mta.budget import SharedBudget
from mta.config import Config
from mta.connection_slots import ConnectionSlots
from mta.database import DATABASE_ERRORS
from mta.dkim import DkimError, DkimSigners
from mta.dns import Resolver
from mta.outcomes import OutcomeJournal, OutcomeWriter
from mta.queue import ClaimedRecipient, Outcome, RecipientState, StoredMessage
from mta.retry import RetryPolicy, expired_reply
from mta.routing import Router, RoutingError
from mta.sites import Job, Site
from mta.throttle import Rate
from mta.verp import Verp

log = logging.getLogger("sendmill.delivery")

NOTIFY_CHANNEL = "sendmill_queue"
# Campaign moves announced by the control API: "hold:<message id>", "cancel:<message id>",
# "release:<message id>". Jobs of that message leased here and not started are taken back.
WITHDRAW_CHANNEL = "sendmill_withdraw"
_WITHDRAW_STATES = {"hold": RecipientState.HELD, "cancel": RecipientState.CANCELLED}
REPLY_SUPPRESSED = "550 5.7.1 Recipient is on the suppression list ({reason}); not sent"
REPLY_EXPIRED = "421 4.4.7 Message expired in the queue before it could be delivered"
REPLY_RENDER_FAILED = "554 5.6.0 Campaign message could not be personalised: {detail}"
REPLY_NO_RENDERER = "451 4.3.5 This delivery node cannot render campaign mail; retrying later"
REPLY_DKIM_FAILED = "451 4.7.0 DKIM signing failed: {detail}"
RELISTEN_INTERVAL = 5.0  # seconds between attempts to LISTEN again after losing the connection


class MessagePreparer(Protocol):
    """Per-recipient message preparation before signing (the tracker's links and headers).
    The daemon passes one; mta never imports its implementation."""

    def needs_preparation(self, message: StoredMessage) -> bool:
        """Cheap check: False keeps the message on the shared, signed-once fast path."""

    def prepare(self, message: StoredMessage, recipient: ClaimedRecipient) -> bytes:
        """The body this recipient gets (unsigned); never raises."""


class MessageRenderer(Protocol):
    """Campaign mail (messages with a `campaign_version_id`): each recipient's body rendered
    from the campaign version and its contact, tracked, unsigned. The daemon passes one
    (control's campaign renderer); mta never imports its implementation."""

    async def render(
        self, message: StoredMessage, recipients: Sequence[ClaimedRecipient]
    ) -> dict[int, bytes | str]:
        """Per recipient id: the body, or a reason (str) it cannot be rendered (it bounces)."""


class BodyCache:
    """Recently used message bodies (and their DKIM headers), bounded by total size."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self._items: OrderedDict[int, tuple[StoredMessage, bytes]] = OrderedDict()
        self._bytes = 0
        self._max = max_bytes

    def get(self, message_id: int) -> tuple[StoredMessage, bytes] | None:
        item = self._items.get(message_id)
        if item is not None:
            self._items.move_to_end(message_id)
        return item

    def put(self, message: StoredMessage, data: bytes) -> None:
        if message.id in self._items:
            return
        self._items[message.id] = (message, data)
        self._bytes += len(data)
        while self._bytes > self._max and self._items:
            _, (_, old) = self._items.popitem(last=False)
            self._bytes -= len(old)


class DeliveryEngine:
    """Delivers the queue from one process; several engines (processes, daemons) may share it."""

    def __init__(
        self,
        config: Config,
        db: asyncpg.Pool,
        resolver: Resolver,
        signers: DkimSigners,
        verp: Verp,
        node: str,
        share: int = 1,
        listen_url: str | None = None,
        preparer: MessagePreparer | None = None,
        renderer: MessageRenderer | None = None,
        observer: Callable[[Sequence[Outcome]], Awaitable[Iterable[str] | None]] | None = None,
    ) -> None:
        self._config = config
        self._preparer = preparer
        self._renderer = renderer
        self._db = db
        self._resolver = resolver
        self._signers = signers
        self._verp = verp
        self.node = node
        self._share = share
        self._router = Router(config, resolver)
        self._retry = RetryPolicy(config.delivery.retry_schedule, config.delivery.max_age)
        self._sites: dict[str, Site] = {}
        self._bodies = BodyCache()
        journal = OutcomeJournal(config.state_path / "outcomes" / f"{_file_name(node)}.jsonl")
        self._outcomes = OutcomeWriter(db, node, journal)
        self._held: set[int] = set()  # recipient ids leased and whose outcome is not written
        # Held while claiming and while renewing leases: a claim the database has made but whose
        # answer has not reached `_held` yet must not be given back as unknown by renew-leases.
        self._claiming = asyncio.Lock()
        self._wake = asyncio.Event()  # new mail, or leases taken back: claim now
        self._room = asyncio.Event()  # outcomes written: the backlog may be under its limit
        self._flushed = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._routing: set[asyncio.Task[None]] = set()
        self._listen_url = listen_url
        self._listener: asyncpg.Connection | None = None
        self._listen_again_at = 0.0
        # Told about every written batch of failed outcomes (the bounce processor, wired by
        # mta/daemon.py); runs beside delivery, never in its way. It may answer with recipient
        # domains whose sites refused us for reputation or policy: those sites slow down.
        self._observer = observer
        self._observing: set[asyncio.Task[None]] = set()
        self._slots = ConnectionSlots(db, node)
        # Messages whose campaign is paused or cancelled: their jobs are not handed to sites.
        self._withdrawn: dict[int, RecipientState] = {}
        self._withdrawals: asyncio.Queue[tuple[str, int]] = asyncio.Queue()

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        await self._outcomes.replay()  # outcomes a killed run kept on disk, before any claim
        await self._slots.release_all()  # a restarted node holds no connection
        await self._listen()
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name="claim"),
            asyncio.create_task(self._flush_loop(), name="flush"),
            asyncio.create_task(self._lease_loop(), name="leases"),
            asyncio.create_task(self._slot_loop(), name="connection-slots"),
            asyncio.create_task(self._withdraw_loop(), name="withdrawals"),
        ]

    async def stop(self, grace: float = 30.0) -> None:
        """Stop claiming, release unstarted jobs, let in-flight transactions finish."""
        self._stopping = True
        self._wake.set()
        self._room.set()
        claim = self._tasks[0] if self._tasks else None
        if claim:
            await asyncio.gather(claim, return_exceptions=True)
        for task in list(self._routing):
            task.cancel()
        await asyncio.gather(*self._routing, return_exceptions=True)
        pending: list[Job] = []
        drains = [site.drain() for site in self._sites.values()]
        try:
            for jobs in await asyncio.wait_for(asyncio.gather(*drains), grace):
                pending.extend(jobs)
        except TimeoutError:
            log.warning("delivery: in-flight transactions did not finish within %.0fs", grace)
        await self._flush()
        if len(self._outcomes):
            # The database is away: keep the outcomes for the next start, and the rows leased.
            self._outcomes.keep_on_disk()
        unwritten = self._outcomes.recipient_ids()
        release = [i for i in self._held if i not in unwritten]
        with contextlib.suppress(Exception):
            await queue.release(self._db, self.node, release)
        for task in self._tasks[1:]:
            task.cancel()
        await asyncio.gather(*self._tasks[1:], return_exceptions=True)
        await asyncio.gather(*self._observing, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._slots.release_all()
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()

    async def _listen(self) -> None:
        """LISTEN for new-mail notifications, so delivery starts without waiting for a poll, and
        for site slow-downs announced by other parts of the daemon (mta/site_signals.py)."""
        if not self._listen_url:
            return
        self._listen_again_at = time.monotonic() + RELISTEN_INTERVAL
        try:
            self._listener = await asyncpg.connect(self._listen_url)
            # A PostgreSQL restart ends this connection: listen again (see `_claim_loop`),
            # or new mail waits for the poll interval from then on.
            self._listener.add_termination_listener(lambda _: self._wake.set())
            await self._listener.add_listener(NOTIFY_CHANNEL, lambda *_: self._wake.set())
            await self._listener.add_listener(
                site_signals.CHANNEL, lambda _c, _p, _ch, domain: self.slow_down(domain)
            )
            await self._listener.add_listener(WITHDRAW_CHANNEL, self._on_withdraw)
        except Exception as exc:  # polling still works; notifications are an optimisation
            log.warning("delivery: LISTEN unavailable (%s), polling meanwhile", exc)
            if self._listener is not None:
                self._listener.terminate()
            self._listener = None

    # --- claiming -----------------------------------------------------------------------

    @property
    def backlog(self) -> int:
        return len(self._held)

    async def _claim_loop(self) -> None:
        d = self._config.delivery
        high_water = d.batch_size * 4
        failures = 0
        while not self._stopping:
            if self.backlog >= high_water or self._outcomes.failing:
                # Wait for written outcomes, not for `_wake`: new mail keeps that set while the
                # backlog is full, and waiting on it spun a core (issue 11).
                self._room.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._room.wait(), d.poll_interval)
                continue
            try:
                async with self._claiming:
                    claimed = await queue.claim(
                        self._db,
                        self.node,
                        d.batch_size,
                        d.lease,
                        per_company=max(10, d.batch_size // 4),
                        skip_domains=self._paused_domains(),
                    )
                    self._held.update(c.id for c in claimed)
            except DATABASE_ERRORS as exc:
                # Not `_sleep`: `_wake` may be set, and a claim a millisecond is a storm.
                failures += 1
                if failures == 1 or failures % 30 == 0:
                    log.warning("delivery: claim failed (%s); retrying", exc)
                await asyncio.sleep(min(2.0, d.poll_interval * failures))
                continue
            failures = 0
            if not claimed:
                self._wake.clear()
                if self._listener_lost() and time.monotonic() >= self._listen_again_at:
                    await self._listen()
                await self._sleep(d.poll_interval)
                continue
            try:
                await self._dispatch(claimed)
            except DATABASE_ERRORS as exc:
                log.warning("delivery: dispatch failed (%s); releasing the batch", exc)
                self._held.difference_update(c.id for c in claimed)
                with contextlib.suppress(Exception):
                    await queue.release(self._db, self.node, [c.id for c in claimed], 5)

    def _listener_lost(self) -> bool:
        return bool(self._listen_url) and (self._listener is None or self._listener.is_closed())

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    def _paused_domains(self) -> list[str]:
        """Domains of sites that cannot take work now: leave their rows in the database."""
        now = time.monotonic()
        limit = 4 * self._config.delivery.batch_size
        return [
            domain
            for site in self._sites.values()
            if site.unreachable_until > now or len(site) > limit
            for domain in site.domains
        ]

    async def _dispatch(self, claimed: Sequence[ClaimedRecipient]) -> None:
        now = datetime.now(UTC)
        live: list[ClaimedRecipient] = []
        for c in claimed:
            if c.expires_at <= now:
                self._record(c, RecipientState.EXPIRED, 0, REPLY_EXPIRED, None)
            else:
                live.append(c)
        live = await self._drop_suppressed(live)
        messages = await self._messages({c.message_id for c in live})
        rendered = await self._render_campaigns(live, messages)
        by_domain: dict[str, list[Job]] = {}
        prepared = 0
        for c in live:
            cached = messages.get(c.message_id)
            if cached is None:  # message row gone (deleted): nothing to send
                self._record(c, RecipientState.BOUNCED, 550, "550 5.0.0 message body missing", None)
                continue
            message, data = cached
            if message.campaign_version_id is not None:
                body = rendered.get(c.id)
                if body is None:  # this engine was built without a renderer: another may have one
                    self._record(c, RecipientState.DEFERRED, 451, REPLY_NO_RENDERER, None, 300.0)
                    continue
                if isinstance(body, str):
                    reply = REPLY_RENDER_FAILED.format(detail=body)
                    self._record(c, RecipientState.BOUNCED, 554, reply, None)
                    continue
                data = self._sign(message, body)
                prepared += 1
                if prepared % 16 == 0:
                    await asyncio.sleep(0)  # a ~1 ms signature each: let the loop breathe
            elif self._prepared_per_recipient(message):
                assert self._preparer is not None
                data = self._sign(message, self._preparer.prepare(message, c))
                prepared += 1
                if prepared % 16 == 0:
                    await asyncio.sleep(0)  # a ~1 ms CPU step each: let the loop breathe
            job = Job(c, message, data, self._verp.address(c.id))
            by_domain.setdefault(c.domain, []).append(job)
        for domain, jobs in by_domain.items():
            task = asyncio.create_task(self._route(domain, jobs))
            self._routing.add(task)
            task.add_done_callback(self._routing.discard)

    async def _render_campaigns(
        self,
        live: Sequence[ClaimedRecipient],
        messages: dict[int, tuple[StoredMessage, bytes]],
    ) -> dict[int, bytes | str]:
        """Campaign recipients rendered per message (one call each: contacts in one query)."""
        groups: dict[int, list[ClaimedRecipient]] = {}
        for c in live:
            cached = messages.get(c.message_id)
            if cached is not None and cached[0].campaign_version_id is not None:
                groups.setdefault(c.message_id, []).append(c)
        if not groups or self._renderer is None:
            return {}
        out: dict[int, bytes | str] = {}
        for message_id, recipients in groups.items():
            out.update(await self._renderer.render(messages[message_id][0], recipients))
        return out

    async def _drop_suppressed(self, claimed: list[ClaimedRecipient]) -> list[ClaimedRecipient]:
        """Suppressed (and unsubscribed marketing) recipients are never contacted: checked again
        at delivery time, since the list may have changed while the row waited."""
        if not claimed:
            return claimed
        blocked = await queue.blocked_recipients(self._db, [c.id for c in claimed])
        live = []
        for c in claimed:
            reason = blocked.get(c.id)
            if reason is None:
                live.append(c)
            else:
                reply = REPLY_SUPPRESSED.format(reason=reason)
                self._record(c, RecipientState.SUPPRESSED, 550, reply, None, counts=False)
        return live

    async def _messages(self, ids: set[int]) -> dict[int, tuple[StoredMessage, bytes]]:
        found: dict[int, tuple[StoredMessage, bytes]] = {}
        missing = []
        for i in ids:
            hit = self._bodies.get(i)
            if hit is None:
                missing.append(i)
            else:
                found[i] = hit
        if missing:
            for message in (await queue.fetch_messages(self._db, missing)).values():
                # Per-recipient messages are signed after preparation, one body at a time.
                prepared = self._prepared_per_recipient(message)
                data = message.body if prepared else self._sign(message, message.body)
                self._bodies.put(message, data)
                found[message.id] = (message, data)
        return found

    def _prepared_per_recipient(self, message: StoredMessage) -> bool:
        if message.campaign_version_id is not None:
            return True  # rendered and signed per recipient
        return self._preparer is not None and self._preparer.needs_preparation(message)

    def _sign(self, message: StoredMessage, body: bytes) -> bytes:
        """DKIM-sign at delivery time: once per message whatever its number of recipients, or
        once per recipient for messages prepared per recipient."""
        signer = self._signers.signer_for(message.from_domain)
        if signer is None:
            return body
        try:
            headers = signer.sign(body)
        except DkimError as exc:
            metrics.DKIM_FAILURES.inc()
            log.error("DKIM signing failed for message %s: %s", message.id, exc)
            return body  # unsigned beats undelivered; the failure is counted
        metrics.DKIM_SIGNATURES.labels("dkim").inc()
        return headers + body

    async def _route(self, domain: str, jobs: list[Job]) -> None:
        try:
            destination = await self._router.destination(domain)
        except RoutingError as exc:
            state = RecipientState.BOUNCED if exc.permanent else None
            for job in jobs:
                if state is None:
                    self._report(job, exc.code, exc.reply, None, 0)
                else:
                    self._record(job.claim, state, exc.code, exc.reply, None)
            return
        site = self._sites.get(destination.site)
        if site is None:
            sending = self._config.sending_domain(jobs[0].message.from_domain)
            pool = self._config.pool(sending.pool if sending else "default")
            limits = self._config.limits_for(domain)
            budget = (
                SharedBudget(self._db, destination.site, Rate.parse(limits.rate))
                if limits.rate
                else None
            )
            site = Site(
                destination.site,
                destination,
                limits,
                self._config.delivery,
                self._resolver,
                self._config.hostname,
                self._report,
                share=self._share,
                source_addresses=pool.source_addresses,
                budget=budget,
                slots=self._slots,
            )
            self._sites[destination.site] = site
        site.domains.add(domain)
        withheld: dict[RecipientState, list[Job]] = {}
        for job in jobs:
            state = self._withdrawn.get(job.message.id)
            if state is None:
                site.push(job)
            else:
                withheld.setdefault(state, []).append(job)
        for state, held in withheld.items():
            try:
                await self._hold(held, state)
            except (OSError, asyncpg.PostgresError) as exc:  # their leases run out instead
                log.warning("delivery: withholding %d jobs failed: %s", len(held), exc)

    # --- campaign pause and cancel ------------------------------------------------------

    def _on_withdraw(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        action, _, ident = payload.partition(":")
        if ident.isdigit() and (action in _WITHDRAW_STATES or action == "release"):
            self._withdrawals.put_nowait((action, int(ident)))

    async def _withdraw_loop(self) -> None:
        """Campaign moves in the order announced: jobs of a paused or cancelled campaign's
        message leased here and not started are taken back from the sites (held, or final
        as cancelled); a resume lets its jobs through again."""
        while True:
            action, message_id = await self._withdrawals.get()
            try:
                if action == "release":
                    self._withdrawn.pop(message_id, None)
                    await queue.release_message_held(self._db, message_id)
                    self._wake.set()
                    continue
                state = _WITHDRAW_STATES[action]
                self._withdrawn[message_id] = state
                await self._hold(self._take_jobs(message_id), state)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning(
                    "delivery: campaign %s of message %s failed: %s", action, message_id, exc
                )

    def _take_jobs(self, message_id: int) -> list[Job]:
        taken: list[Job] = []
        for site in self._sites.values():
            keep: list[Job] = []
            while site.queue:
                job = site.queue.pop()
                (taken if job.message.id == message_id else keep).append(job)
            for job in keep:
                site.queue.push(job.claim.company_id, job.claim.priority, job)
        return taken

    async def _hold(self, jobs: list[Job], state: RecipientState) -> None:
        ids = [j.claim.id for j in jobs]
        if ids:
            await queue.withdraw(self._db, self.node, ids, state)
            self._held.difference_update(ids)

    # --- outcomes -----------------------------------------------------------------------

    def _report(self, job: Job, code: int, reply: str, mx: str | None, duration_ms: int) -> None:
        """A site's result for a job: decide the new state and queue the outcome for writing."""
        c = job.claim
        state, delay = self._retry.decide(code, c.attempts, c.expires_at, datetime.now(UTC))
        if state is RecipientState.EXPIRED:
            reply = expired_reply(reply, c.attempts + 1)
        self._record(c, state, code, reply, mx, delay, duration_ms)

    def _record(
        self,
        c: ClaimedRecipient,
        state: RecipientState,
        code: int,
        reply: str,
        mx: str | None,
        delay: float | None = None,
        duration_ms: int = 0,
        counts: bool = True,
    ) -> None:
        self._outcomes.add(
            Outcome(c.id, state, reply, code or None, mx, delay, duration_ms, counts, c.attempts)
        )
        metrics.DELIVERIES.labels(str(state)).inc()
        if state.is_final:
            metrics.QUEUE_SECONDS.observe(
                max(0.0, (datetime.now(UTC) - c.created_at).total_seconds())
            )
        if len(self._outcomes) >= 200:
            self._wake_flush()

    def _wake_flush(self) -> None:
        self._flushed.set()

    async def _flush(self) -> bool:
        """Write pending outcomes; False when the database could not take them (they are kept
        and their rows stay held, so their leases keep being renewed)."""
        batch = await self._outcomes.write()
        if batch:
            self._notify(batch)
            self._held.difference_update(o.recipient_id for o in batch)
            self._room.set()
        return not self._outcomes.failing

    def _notify(self, batch: list[Outcome]) -> None:
        if self._observer is None:
            return
        failed = [o for o in batch if o.state is not RecipientState.DELIVERED]
        if failed:
            task = asyncio.create_task(self._observe(failed))
            self._observing.add(task)
            task.add_done_callback(self._observing.discard)

    async def _observe(self, failed: list[Outcome]) -> None:
        assert self._observer is not None
        try:
            slow = await self._observer(failed)
        except Exception:  # an observer's failure must not touch delivery
            log.warning("delivery: outcome observer failed", exc_info=True)
            return
        for domain in slow or ():
            self.slow_down(domain)

    def slow_down(self, domain: str) -> None:
        """Make the site that receives `domain` back off, as after a 421."""
        for site in self._sites.values():
            if domain in site.domains:
                site.slow_down()

    async def _flush_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flushed.wait(), 0.05)
            self._flushed.clear()
            if not await self._flush():
                await asyncio.sleep(self._outcomes.backoff)  # the database is away

    async def _slot_loop(self) -> None:
        """Keep the shared connection slots of open connections leased, and free the others
        soon after a database error may have left some behind."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._slots.stale.wait(), self._slots.lease / 3)
            try:
                await self._slots.renew()
            except DATABASE_ERRORS as exc:
                log.warning("delivery: connection slot upkeep failed: %s", exc)
                await asyncio.sleep(1.0)

    async def _lease_loop(self) -> None:
        d = self._config.delivery
        while True:
            await asyncio.sleep(max(0.05, d.lease / 3))
            try:
                async with self._claiming:
                    await queue.renew_leases(self._db, self.node, d.lease, list(self._held))
                if self._outcomes.failing:
                    continue  # rows whose outcome we hold may be among the expired ones
                retaken = await queue.retake_expired_leases(self._db)
                if retaken:
                    log.info("delivery: took back %d recipients with expired leases", retaken)
                    self._wake.set()
            except DATABASE_ERRORS as exc:
                log.warning("delivery: lease upkeep failed: %s", exc)


def _file_name(node: str) -> str:
    """A node name (host:state-hash:index) as a file name."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in node)
