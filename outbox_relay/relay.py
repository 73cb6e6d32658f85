"""The relay: claim → publish → mark, as a thread, a process or a bounded drain."""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from . import metrics as m
from .db import check_database, connect_engine, translate
from .envelope import (
    deduplication_id,
    envelope_json,
    message_attributes,
    message_group_id,
    message_size,
)
from .exceptions import ConfigurationError, OutboxError, PublishError
from .metrics import MetricsSink, NullMetrics
from .publisher import BatchOutcome, EntryFailure, OutboundMessage, Publisher
from .schema import DEFAULT_SCHEMA, check_schema
from .store import ClaimedRow, OutboxStore, Release
from .writer import notify_channel

__all__ = ["DrainResult", "Relay", "RelayOptions", "RelayThread"]

log = logging.getLogger("outbox_relay")


@dataclass(frozen=True, kw_only=True)
class RelayOptions:
    """How a relay claims, sends and retries. Every field is validated on construction."""

    schema: str = DEFAULT_SCHEMA
    #: rows claimed per database round trip
    claim_size: int = 200
    #: entries per SendMessageBatch (SQS allows at most 10)
    batch_size: int = 10
    #: consecutive rows of one aggregate per claim. 1 (default) sends a group one message at a
    #: time, which keeps order even when SQS rejects one entry of a batch and accepts a later one
    #: of the same group; up to 10 trades that guarantee for single-aggregate throughput.
    rows_per_group: int = 1
    #: SendMessageBatch requests in flight at once (shared by the pipelines)
    concurrency: int = 8
    #: claim→publish→mark passes running at once, each on its own groups
    pipelines: int = 4
    #: how long a claim is ours; a relay that stalls longer is fenced off
    lease_seconds: float = 30.0
    #: failed sends before a row is dead (throttling does not count)
    max_attempts: int = 8
    backoff_base_seconds: float = 0.5
    backoff_max_seconds: float = 60.0
    #: idle wait between polls when no NOTIFY arrives
    poll_interval_seconds: float = 1.0
    #: wake on LISTEN/NOTIFY (the writer notifies on commit)
    listen: bool = True
    #: SQS FIFO deduplicates a MessageDeduplicationId for 5 minutes only
    dedup_window: timedelta = timedelta(minutes=5)
    #: identifies this relay in leases and logs
    relay_id: str = field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    )
    #: how often the oldest-pending-age gauge is refreshed
    lag_interval_seconds: float = 5.0
    #: publish calls per second of this relay (None: unpaced). Set it just under the queue's
    #: quota (FIFO normal mode: 300 per action, shared by every relay): a throttled call costs a
    #: 0.5-2 s pause of the whole relay, so staying under the quota is worth far more.
    max_calls_per_second: float | None = None

    def __post_init__(self) -> None:
        check_schema(self.schema)
        checks: list[tuple[str, Any, bool]] = [
            ("claim_size", self.claim_size, 1 <= self.claim_size <= 10_000),
            ("batch_size", self.batch_size, 1 <= self.batch_size <= 10),
            ("rows_per_group", self.rows_per_group, 1 <= self.rows_per_group <= 10),
            ("concurrency", self.concurrency, 1 <= self.concurrency <= 256),
            ("pipelines", self.pipelines, 1 <= self.pipelines <= 16),
            ("lease_seconds", self.lease_seconds, self.lease_seconds >= 1),
            ("max_attempts", self.max_attempts, self.max_attempts >= 1),
            ("backoff_base_seconds", self.backoff_base_seconds, self.backoff_base_seconds > 0),
            (
                "backoff_max_seconds",
                self.backoff_max_seconds,
                self.backoff_max_seconds >= self.backoff_base_seconds,
            ),
            ("poll_interval_seconds", self.poll_interval_seconds, self.poll_interval_seconds > 0),
            (
                "max_calls_per_second",
                self.max_calls_per_second,
                self.max_calls_per_second is None or self.max_calls_per_second > 0,
            ),
        ]
        for name, value, ok in checks:
            if not ok:
                raise ConfigurationError(f"RelayOptions.{name}={value!r} is out of range")


@dataclass(frozen=True, slots=True)
class DrainResult:
    published: int
    failed: int
    dead: int
    late_resends: int
    remaining: int
    seconds: float


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
        self._store = OutboxStore(self.engine, schema=self.options.schema)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._wake = threading.Event()
        self._throttled_until = 0.0
        self._last_lag = -1e9
        self._checked = False
        rate = self.options.max_calls_per_second
        self._pacer = _Pacer(rate) if rate else None

    # -- lifecycle -----------------------------------------------------------------------
    def check(self) -> None:
        """Database reachable, outbox table present, destination usable: or a specific error."""
        check_database(self.engine, schema=self.options.schema)
        self.publisher.check()
        self._checked = True

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

    def wake(self) -> None:
        """Ask an idle relay to look for work now (the NOTIFY listener calls this)."""
        self._wake.set()

    # -- one pass ------------------------------------------------------------------------
    def run_once(self) -> int:
        """Claim, publish and mark one set of rows; return how many were published."""
        return self._pass().published

    def _pass(self) -> _PassStats:
        opts = self.options
        stats = _PassStats()
        wait = self._throttled_until - self._clock()
        if wait > 0:
            time.sleep(min(wait, opts.backoff_max_seconds))
        try:
            token, rows = self._store.claim(
                owner=opts.relay_id,
                claim_size=opts.claim_size,
                rows_per_group=opts.rows_per_group,
                lease_seconds=opts.lease_seconds,
                scan=max(opts.claim_size * 4, 500),
            )
        except sa_exc.DBAPIError as exc:
            raise translate(exc, schema=opts.schema) from exc
        if not rows:
            return stats
        deadline = self._clock() + opts.lease_seconds * 0.8
        late = [
            r
            for r in rows
            if r.first_sent_at is not None and r.claimed_at - r.first_sent_at > opts.dedup_window
        ]
        for r in late:
            log.warning(
                "late re-send of event %s: first sent %s, past the SQS dedup window; "
                "consumers must dedup on the event id",
                r.event_id,
                r.first_sent_at,
            )
        stats.late = len(late)
        if late:
            self.metrics.count(m.LATE_RESENDS, len(late))
        messages, releases = self._build(rows)
        attempts = {r.id: r.attempts for r in rows}
        published, more = self._publish(messages, deadline, attempts)
        releases.extend(more)
        stats.published = len(published)
        stats.failed = sum(1 for r in releases if r.spend_attempt)
        try:
            marked, died = self._store.mark(
                token=token, published=published, releases=releases, max_attempts=opts.max_attempts
            )
        except sa_exc.DBAPIError as exc:
            # The rows stay leased; after the lease they are claimed again and re-sent with the
            # same deduplication ids, so a failed mark costs a duplicate send, never a loss.
            log.error(
                "marking %d rows failed (they will be re-sent after the lease): %s", len(published), exc
            )
            raise translate(exc, schema=opts.schema) from exc
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

    def _build(self, rows: Sequence[ClaimedRow]) -> tuple[list[OutboundMessage], list[Release]]:
        messages: list[OutboundMessage] = []
        releases: list[Release] = []
        for r in rows:
            try:
                event_id = str(r.event_id)
                body = envelope_json(
                    event_id=event_id,
                    event_type=r.event_type,
                    aggregate_type=r.aggregate_type,
                    aggregate_key=r.aggregate_key,
                    occurred_at=r.created_at,
                    headers_json=r.headers or "{}",
                    payload_json=r.payload,
                )
                attrs = message_attributes(r.event_type)
                size = message_size(body, attrs)
                if size > self.publisher.max_batch_bytes:
                    raise OutboxError(
                        f"message is {size:,} bytes, over the {self.publisher.max_batch_bytes:,}-byte limit"
                    )
                messages.append(
                    OutboundMessage(
                        row_id=r.id,
                        event_id=event_id,
                        group_id=message_group_id(r.aggregate_type, r.aggregate_key),
                        deduplication_id=deduplication_id(r.event_id),
                        body=body,
                        attributes=attrs,
                        size=size,
                    )
                )
            except OutboxError as exc:
                # A poison row (written around enqueue's checks): dead now, the rest flows on.
                releases.append(Release(r.id, f"poison: {exc}", 0.0, True, dead=True))
        return messages, releases

    def _batches(self, messages: list[OutboundMessage]) -> list[list[OutboundMessage]]:
        """Pack messages into requests; a group's rows are consecutive and never split across
        requests (requests run concurrently and would race)."""
        limit_n = min(self.options.batch_size, self.publisher.max_batch_entries)
        limit_b = self.publisher.max_batch_bytes
        by_group: dict[str, list[OutboundMessage]] = {}
        for msg in messages:  # messages come in id order, so each list is in commit order
            by_group.setdefault(msg.group_id, []).append(msg)
        runs = list(by_group.values())
        batches: list[list[OutboundMessage]] = []
        current: list[OutboundMessage] = []
        size = 0
        for run in runs:
            run_size = sum(x.size for x in run)
            if current and (len(current) + len(run) > limit_n or size + run_size > limit_b):
                batches.append(current)
                current, size = [], 0
            while run and (len(run) > limit_n or run_size > limit_b):
                run.pop()  # the tail of an oversized run waits for the next claim
                run_size = sum(x.size for x in run)
            current.extend(run)
            size += run_size
        if current:
            batches.append(current)
        return batches

    def _publish(
        self, messages: list[OutboundMessage], deadline: float, attempts: dict[int, int]
    ) -> tuple[list[int], list[Release]]:
        if not messages:
            return [], []
        batches = self._batches(messages)
        sent = {m.row_id for b in batches for m in b}
        releases = [Release(m.row_id, None, 0.0, False) for m in messages if m.row_id not in sent]
        with self._pool_lock:  # pipelines share one pool: concurrency bounds the whole relay
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.options.concurrency, thread_name_prefix="outbox-send")
            pool = self._pool
        futures = [pool.submit(self._send_one, b, deadline) for b in batches]
        published: list[int] = []
        for fut in futures:
            outcome = fut.result()
            published.extend(outcome.succeeded)
            for f in outcome.failed:
                releases.append(self._release_for(f, attempts.get(f.row_id, 0)))
        return published, releases

    def _send_one(self, batch: list[OutboundMessage], deadline: float) -> BatchOutcome:
        if self._pacer is not None:
            self._pacer.wait()
        if self._clock() > deadline:
            # Our lease may have passed to another relay: sending now could overtake it.
            return BatchOutcome(
                failed=[
                    EntryFailure(
                        row_id=x.row_id, code="LeaseExpired", reason="lease about to expire", throttled=True
                    )
                    for x in batch
                ]
            )
        started = time.perf_counter()
        try:
            outcome = self.publisher.publish_batch(batch)
        except PublishError as exc:
            if exc.throttled:
                self.metrics.count(m.THROTTLED)
            outcome = BatchOutcome(
                failed=[
                    EntryFailure(
                        row_id=x.row_id,
                        code="RequestFailed",
                        reason=str(exc),
                        permanent=not exc.retryable,
                        throttled=exc.throttled,
                    )
                    for x in batch
                ]
            )
        except Exception as exc:  # a publisher bug must not kill the relay or lose the rows
            log.exception("publisher raised")
            outcome = BatchOutcome(
                failed=[
                    EntryFailure(row_id=x.row_id, code=type(exc).__name__, reason=str(exc)) for x in batch
                ]
            )
        self.metrics.timing(m.BATCH_LATENCY, (time.perf_counter() - started) * 1000)
        return outcome

    def _release_for(self, failure: EntryFailure, attempts: int) -> Release:
        opts = self.options
        if failure.throttled:
            delay = random.uniform(opts.backoff_base_seconds, opts.backoff_base_seconds * 4)
            self._throttled_until = max(self._throttled_until, self._clock() + delay)
            return Release(failure.row_id, f"throttled: {failure.code}", delay, False)
        if failure.permanent:
            return Release(failure.row_id, f"{failure.code}: {failure.reason}", 0.0, True, dead=True)
        # exponential backoff with full jitter, so relays retrying together spread out
        ceiling = min(opts.backoff_max_seconds, opts.backoff_base_seconds * 2 ** min(attempts, 20))
        delay = random.uniform(opts.backoff_base_seconds / 2, max(ceiling, opts.backoff_base_seconds))
        return Release(failure.row_id, f"{failure.code}: {failure.reason}", delay, True)

    # -- loops ---------------------------------------------------------------------------
    def drain(self, *, max_seconds: float, idle_exit: bool = True) -> DrainResult:
        """Publish until nothing is due or ``max_seconds`` pass (for a scheduled Lambda)."""
        if not self._checked:
            self.check()
        started = self._clock()
        total = _PassStats()
        lock = threading.Lock()

        def work() -> None:
            while self._clock() - started < max_seconds:
                stats = self._pass()
                with lock:
                    total.published += stats.published
                    total.failed += stats.failed
                    total.dead += stats.dead
                    total.late += stats.late
                if stats.published == 0 and stats.failed == 0 and stats.dead == 0 and idle_exit:
                    break

        self._in_pipelines(work)
        self._report_lag(force=True)
        remaining = self.pending_count()
        return DrainResult(
            total.published, total.failed, total.dead, total.late, remaining, self._clock() - started
        )

    def _in_pipelines(self, work: Callable[[], None]) -> None:
        """Run ``work`` in ``options.pipelines`` threads (this one included): while one pass
        waits on SQS, another claims, so senders never idle behind the database."""
        errors: list[BaseException] = []

        def guarded() -> None:
            try:
                work()
            except BaseException as exc:  # surfaced below, in the caller's thread
                errors.append(exc)

        helpers = [
            threading.Thread(target=guarded, name=f"outbox-pipeline-{i}", daemon=True)
            for i in range(1, self.options.pipelines)
        ]
        for t in helpers:
            t.start()
        try:
            work()
        finally:
            for t in helpers:
                t.join()
        if errors:
            raise errors[0]

    def pending_count(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.exec_driver_sql(
                    f"SELECT count(*) FROM \"{self.options.schema}\".outbox WHERE state = 'pending'"
                ).scalar_one()
            )

    def run_forever(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set; in-flight batches finish and are marked before return."""
        if not self._checked:
            self.check()
        listener = _Listener(self, stop) if self.options.listen else None
        if listener:
            listener.start()
        try:
            self._in_pipelines(lambda: self._serve(stop))
        finally:
            if listener:
                listener.stop()

    def _serve(self, stop: threading.Event) -> None:
        errors = 0
        while not stop.is_set():
            try:
                stats = self._pass()
                errors = 0
            except OutboxError as exc:
                errors += 1
                delay = min(self.options.backoff_max_seconds, 0.5 * 2 ** min(errors, 6))
                log.error("relay pass failed (retrying in %.1fs): %s", delay, exc)
                stop.wait(delay)
                continue
            self._report_lag()
            if stats.published == 0 and stats.failed == 0 and stats.dead == 0:
                self._wake.wait(self.options.poll_interval_seconds)
                self._wake.clear()

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
            self.wake()

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
            except sa_exc.DBAPIError as exc:
                log.warning("could not read the outbox lag: %s", exc)


class _Pacer:
    """A token bucket shared by the sender threads: on average ``rate`` calls per second, with
    up to ``burst`` at once after a pause, so a slot missed while senders wait on the database
    is caught up instead of lost."""

    def __init__(self, rate: float, burst: int | None = None) -> None:
        self._interval = 1.0 / rate
        self._window = self._interval * (burst if burst is not None else max(1, int(rate / 20)))
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            slot = max(self._next, now - self._window)
            self._next = slot + self._interval
        if slot > now:
            time.sleep(slot - now)


class RelayThread:
    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=relay.run_forever, args=(self._stop,), name="outbox-relay", daemon=True
        )
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float | None = 30.0) -> None:
        self._stop.set()
        self.relay.wake()
        self._thread.join(timeout)


class _Listener(threading.Thread):
    """LISTEN on a dedicated connection; a NOTIFY from a committing writer wakes the relay."""

    def __init__(self, relay: Relay, stop: threading.Event) -> None:
        super().__init__(name="outbox-listen", daemon=True)
        self.relay = relay
        self._stop_event = stop
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    def run(self) -> None:
        import psycopg

        url = self.relay.engine.url.set(drivername="postgresql")
        dsn = url.render_as_string(hide_password=False)
        channel = notify_channel(self.relay.options.schema)
        while not (self._halt.is_set() or self._stop_event.is_set()):
            try:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute(f'LISTEN "{channel}"')
                    while not (self._halt.is_set() or self._stop_event.is_set()):
                        for _ in conn.notifies(timeout=0.5, stop_after=1):
                            self.relay.wake()
            except psycopg.Error as exc:
                log.warning("LISTEN connection lost (polling meanwhile): %s", exc)
                self._halt.wait(1.0)
