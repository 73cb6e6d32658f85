"""The relay: claim → publish → mark, as a thread, a process or a bounded drain.

Failures are classified once (DESIGN.md §3, 4b): an entry SQS rejected for its own content
spends that row's attempt; a request-level failure (connection, 5xx, throttling, credentials,
permissions) backs the whole relay off and spends nothing; a database error never ends a
pipeline (it is logged, counted, backed off and retried), and a supervisor restarts a pipeline
that dies anyway.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from . import metrics as m
from .db import check_database, connect_engine, translate
from .exceptions import DatabaseError, OutboxError
from .metrics import MetricsSink, NullMetrics
from .options import DrainResult, RelayOptions
from .publisher import OutboundMessage, Publisher
from .sending import Backoff, Pacer, Sender, build_messages, pack_batches
from .store import ClaimedRow, OutboxStore, Release
from .supervisor import (
    Listener,
    PassesInFlight,
    PipelineCounter,
    RelayThread,
    Waker,
    run_in_threads,
    supervise,
)

__all__ = ["DrainResult", "Relay", "RelayOptions", "RelayThread"]

log = logging.getLogger("outbox_relay")

#: the share of a destination's call quota an unconfigured relay paces itself to (295 of 300
#: calls/s measured best: no throttling, senders kept busy)
QUOTA_HEADROOM = 0.98


@dataclass(slots=True)
class _PassStats:
    published: int = 0
    failed: int = 0
    dead: int = 0
    late: int = 0


class Relay:
    """Moves committed outbox rows to a publisher. Any number of relays may run at once.

    ``engine`` is a SQLAlchemy Engine (yours: never disposed here) or a URL (ours: disposed on
    :meth:`close`). Call :meth:`check` to fail fast; :meth:`run_forever`, :meth:`start_in_thread`
    and :meth:`drain` call it for you.
    """

    def __init__(
        self,
        *,
        engine: sa.Engine | str,
        publisher: Publisher,
        options: RelayOptions | None = None,
        metrics: MetricsSink | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options or RelayOptions()
        self.engine, self._owns_engine = connect_engine(engine)
        self.publisher = publisher
        self.metrics = metrics or NullMetrics()
        self._clock = clock
        self._store = OutboxStore(
            self.engine, schema=self.options.schema, prepared=self.options.prepared_statements
        )
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._wake = Waker()
        opts = self.options
        # one for the send path, one for the database: an SQS outage must not slow the
        # database retries down, nor the reverse
        self._send_backoff = Backoff(opts.backoff_base_seconds, opts.backoff_max_seconds, clock)
        self._db_backoff = Backoff(opts.backoff_base_seconds, opts.backoff_max_seconds, clock)
        rate = opts.max_calls_per_second
        self._sender = Sender(
            publisher,
            options=opts,
            metrics=self.metrics,
            backoff=self._send_backoff,
            pacer=Pacer(rate) if rate else None,
            clock=clock,
        )
        # A publisher whose service orders only across requests (Kinesis: not between records
        # of one key inside one request) caps the rows of a group per claim, so order holds
        # whatever the user set.
        self._rows_per_group = min(opts.rows_per_group, getattr(publisher, "max_rows_per_group", 10))
        self._serving = PipelineCounter()
        # One claim at a time per relay: two claims running at once choose the same heads from
        # the same snapshot, and the loser's SKIP LOCKED leaves it nothing. Serialized, each
        # claim sees its siblings' leases and takes the next rows; a claim is a few ms against
        # a pass of tens, so the pipelines still overlap where it matters (SQS, the mark).
        self._claim_lock = threading.Lock()
        #: pending rows a claim looks at (and as many again past a window of busy groups)
        self._scan = max(opts.claim_size * 4, 500)
        self._in_flight = PassesInFlight(window=self._scan)
        self._last_lag = -1e9
        self._checked = False
        self._paced = False  # by _pace_to_quota, once

    # -- lifecycle -----------------------------------------------------------------------
    def check(self) -> None:
        """Database reachable, outbox table present, destination usable: or a specific error."""
        check_database(self.engine, schema=self.options.schema)
        self.publisher.check()
        self._pace_to_quota()
        self._checked = True

    def _pace_to_quota(self) -> None:
        """Without ``max_calls_per_second``, stay just under the quota the publisher read from
        its destination (an SQS FIFO queue in normal throughput mode: 300 calls/s): a throttled
        call pauses the whole relay, and 16 senders offer about twice that quota."""
        quota = getattr(self.publisher, "calls_per_second_quota", None)
        if self.options.max_calls_per_second is not None or not quota or self._paced:
            return
        rate = quota * QUOTA_HEADROOM
        log.info(
            "the destination takes %.0f publish calls/s (an SQS FIFO queue in normal throughput"
            " mode): pacing this relay at %.0f calls/s; set max_calls_per_second to choose",
            quota,
            rate,
        )
        self._sender.pace(Pacer(rate))
        self._paced = True

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._owns_engine:
            self.engine.dispose()

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wake(self, *, everyone: bool = False) -> None:
        """Ask an idle pipeline to look for work now (the NOTIFY listener calls this);
        ``everyone``: all of them (a stop, so that each sees it at once)."""
        self._wake.wake(everyone=everyone)

    @property
    def alive_pipelines(self) -> int:
        return self._serving.value

    # -- one pass ------------------------------------------------------------------------
    def run_once(self) -> int:
        """Claim, publish and mark one set of rows; return how many were published."""
        return self._pass().published

    def _pass(self) -> _PassStats:
        opts = self.options
        stats = _PassStats()
        wait = self._send_backoff.remaining()
        if wait > 0:  # SQS is failing as a whole: claiming now would only hold leases
            time.sleep(min(wait, opts.backoff_max_seconds))
        # The deadline counts from before the claim: the database starts the lease at some
        # moment after this one, so the lease cannot end before started + lease_seconds,
        # however long the claim waited on locks or the network.
        started = self._clock()
        # A claim stuck on a frozen connection must not freeze its siblings: past a third of
        # the lease (no claim legitimately takes that long) they claim without their turn, at
        # worst choosing the same heads as the stuck one (SKIP LOCKED keeps that safe).
        turn = self._claim_lock.acquire(timeout=opts.lease_seconds / 3)
        try:
            token, rows = self._store.claim(
                owner=opts.relay_id,
                claim_size=opts.claim_size,
                rows_per_group=self._rows_per_group,
                lease_seconds=opts.lease_seconds,
                scan=self._scan,
                destination=opts.destination,
            )
        except sa_exc.SQLAlchemyError as exc:
            raise translate(exc, schema=opts.schema) from exc
        finally:
            if turn:
                self._claim_lock.release()
        if not rows:
            return stats
        with self._in_flight.holding(len(rows)):
            return self._send_and_mark(token, rows, started, stats)

    def _send_and_mark(
        self, token: int, rows: Sequence[ClaimedRow], started: float, stats: _PassStats
    ) -> _PassStats:
        opts = self.options
        # a tenth of the lease is kept back for clock granularity and the mark
        lease_end = started + opts.lease_seconds * 0.9
        messages, releases = self._build(rows)
        attempts = {r.id: r.attempts for r in rows}
        published, more = self._publish(messages, lease_end, attempts)
        releases.extend(more)
        stats.published = len(published)
        stats.failed = sum(1 for r in releases if r.spend_attempt)
        marked, died, late = self._mark(token, rows, published, releases)
        stats.late = self._report_late(late)
        if marked < len(published):
            log.warning("lease lost on %d rows (another relay took them over)", len(published) - marked)
            self.metrics.count(m.LEASE_LOST, len(published) - marked)
        for row in died:
            log.error("event %s is dead after its last attempt: %s", row.event_id, row.last_error)
        stats.dead = len(died)
        self.metrics.count(m.PUBLISHED, marked)
        if stats.failed:
            self.metrics.count(m.FAILED, stats.failed)
        if died:
            self.metrics.count(m.DEAD, len(died))
        stats.published = marked
        return stats

    def _mark(
        self, token: int, rows: Sequence[ClaimedRow], published: list[int], releases: list[Release]
    ) -> tuple[int, list[Any], list[Any]]:
        """Mark what was sent; a transient database error is retried a few times right away,
        since giving up means the rows are re-sent only after the lease (a duplicate send)."""
        opts = self.options
        # A late re-send: SQS may have accepted an earlier send of the row (first_sent_at
        # before this claim), outside the dedup window, and may have accepted this one too.
        maybe_sent = set(published) | {r.row_id for r in releases if r.maybe_sent}
        late = {
            r.id: r.claimed_at
            for r in rows
            if r.id in maybe_sent
            and r.first_sent_at is not None
            and r.claimed_at - r.first_sent_at > opts.dedup_window
        }
        first_sent = {r.id: r.first_sent_at for r in rows}
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._store.mark(
                    token=token,
                    published=published,
                    releases=releases,
                    max_attempts=opts.max_attempts,
                    late=late,
                    first_sent=first_sent,
                )
            except sa_exc.SQLAlchemyError as exc:
                error = translate(exc, schema=opts.schema)
                if not error.transient or attempt == 3:
                    # The rows stay leased; after the lease they are claimed again and re-sent
                    # with the same deduplication ids: a failed mark costs a duplicate send,
                    # never a loss.
                    log.error(
                        "marking %d rows failed (they will be re-sent after the lease): %s",
                        len(published),
                        error,
                    )
                    raise error from exc
                time.sleep(opts.backoff_base_seconds * attempt)

    def _report_late(self, counted: list[Any]) -> int:
        for r in counted:
            log.warning(
                "late re-send of event %s: first sent %s, past the SQS dedup window; "
                "consumers must dedup on the event id",
                r.event_id,
                r.first_sent_at,
            )
        if counted:
            self.metrics.count(m.LATE_RESENDS, len(counted))
        return len(counted)

    def _build(self, rows: Sequence[ClaimedRow]) -> tuple[list[OutboundMessage], list[Release]]:
        limit = getattr(self.publisher, "max_message_bytes", self.publisher.max_batch_bytes)
        return build_messages(rows, max_bytes=limit)

    def _batches(self, messages: list[OutboundMessage]) -> list[list[OutboundMessage]]:
        return pack_batches(
            messages,
            max_entries=min(self.options.batch_size, self.publisher.max_batch_entries),
            max_bytes=self.publisher.max_batch_bytes,
        )

    def _publish(
        self, messages: list[OutboundMessage], lease_end: float, attempts: dict[int, int]
    ) -> tuple[list[int], list[Release]]:
        if not messages:
            return [], []
        batches = self._batches(messages)
        sent = {m.row_id for b in batches for m in b}
        releases = [
            Release(m.row_id, None, 0.0, False, maybe_sent=False) for m in messages if m.row_id not in sent
        ]
        with self._pool_lock:  # pipelines share one pool: concurrency bounds the whole relay
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.options.concurrency, thread_name_prefix="outbox-send")
            pool = self._pool
        futures = [pool.submit(self._sender.send, b, lease_end) for b in batches]
        published: list[int] = []
        for fut in futures:
            outcome = fut.result()
            published.extend(outcome.succeeded)
            for f in outcome.failed:
                releases.append(self._sender.release_for(f, attempts.get(f.row_id, 0)))
        return published, releases

    # -- loops ---------------------------------------------------------------------------
    def _guarded_pass(self, stop: threading.Event | None, time_left: float | None = None) -> _PassStats:
        """One pass; a database error is logged, counted and backed off, never raised."""
        try:
            stats = self._pass()
        except DatabaseError as exc:
            delay = self._db_backoff.fail()
            if time_left is not None:
                delay = min(delay, max(time_left, 0.0))
            self.metrics.count(m.DATABASE_ERRORS)
            log.error(
                "relay pass failed on a database error (%s, retrying in %.2fs): %s",
                exc.sqlstate or "no SQLSTATE",
                delay,
                exc,
            )
            if stop is not None:
                stop.wait(delay)
            else:
                time.sleep(delay)
            return _PassStats()
        self._db_backoff.succeeded()
        return stats

    def drain(self, *, max_seconds: float, idle_exit: bool = True) -> DrainResult:
        """Publish until nothing is due or ``max_seconds`` pass (for a scheduled Lambda)."""
        if not self._checked:
            self.check()
        started = self._clock()
        total = _PassStats()
        lock = threading.Lock()

        def work() -> None:
            while (left := max_seconds - (self._clock() - started)) > 0:
                failures = self._db_backoff.failures
                stats = self._guarded_pass(None, left)
                with lock:
                    total.published += stats.published
                    total.failed += stats.failed
                    total.dead += stats.dead
                    total.late += stats.late
                idle = stats.published == 0 and stats.failed == 0 and stats.dead == 0
                if idle and self._in_flight.wait_for_one(max(left, 0.0)):
                    continue  # rows may have been hidden behind a sibling's leases: look again
                if idle and idle_exit and self._db_backoff.failures <= failures:
                    break  # nothing to do (a database error is not "nothing to do")

        self._in_pipelines(work)
        self._report_lag(force=True)
        remaining = self.pending_count()
        return DrainResult(
            total.published, total.failed, total.dead, total.late, remaining, self._clock() - started
        )

    def _in_pipelines(self, work: Callable[[], None]) -> None:
        """Run ``work`` in ``options.pipelines`` threads (this one included): while one pass
        waits on SQS, another claims, so senders never idle behind the database."""
        run_in_threads(work, self.options.pipelines)

    def pending_count(self) -> int:
        try:
            with self.engine.connect() as conn:
                return int(
                    conn.exec_driver_sql(
                        f'SELECT count(*) FROM "{self.options.schema}".outbox'
                        " WHERE state = 'pending' AND destination = %(d)s",
                        {"d": self.options.destination},
                    ).scalar_one()
                )
        except sa_exc.SQLAlchemyError as exc:
            raise translate(exc, schema=self.options.schema) from exc

    def run_forever(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set; in-flight batches finish and are marked before return."""
        if not self._checked:
            self.check()
        self._wake.reset()
        listener = Listener(self, stop) if self.options.listen else None
        if listener:
            listener.start()
        restarts = Backoff(self.options.backoff_base_seconds, self.options.backoff_max_seconds)

        def pipeline() -> None:
            supervise(
                lambda: self._serve(stop),
                stop=stop,
                name=threading.current_thread().name,
                restart_delay=restarts.fail,
                on_restart=lambda: self.metrics.count(m.PIPELINE_RESTARTS),
            )

        try:
            self._in_pipelines(pipeline)
        finally:
            if listener:
                listener.stop()

    def _serve(self, stop: threading.Event) -> None:
        with self._serving:
            while not stop.is_set():
                try:
                    stats = self._guarded_pass(stop)
                except OutboxError as exc:  # e.g. a publisher's own error type, raised late
                    delay = self._db_backoff.fail()
                    log.error("relay pass failed (retrying in %.1fs): %s", delay, exc)
                    stop.wait(delay)
                    continue
                self._report_lag()
                if stats.published == 0 and stats.failed == 0 and stats.dead == 0:
                    # behind a sibling's leases, the next rows show once it marks them
                    if self._in_flight.wait_for_one(self.options.poll_interval_seconds):
                        continue
                    self._wake.wait(self.options.poll_interval_seconds)

    def start_in_thread(self) -> RelayThread:
        """Run inside a host application; returns a handle whose ``stop()`` drains and joins."""
        self.check()
        return RelayThread(self)

    def run_process(self) -> None:
        """Run in the foreground until SIGTERM/SIGINT, then finish in-flight work and exit."""
        stop = threading.Event()

        def _stop(signum: int, _frame: Any) -> None:
            log.info("signal %s: finishing in-flight batches", signum)
            stop.set()
            self.wake(everyone=True)

        old = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.run_forever(stop)
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            self.close()

    def _report_lag(self, *, force: bool = False) -> None:
        now = self._clock()
        if force or now - self._last_lag >= self.options.lag_interval_seconds:
            self._last_lag = now
            try:
                self.metrics.gauge(m.OLDEST_PENDING_AGE, self._store.oldest_pending_age())
            except sa_exc.SQLAlchemyError as exc:
                log.warning("could not read the outbox lag: %s", exc)
