"""The send step of a pass: rows become messages, messages become batches, a batch is sent
(paced) and every way it can fail becomes a per-row outcome; request-level failures push the
relay-wide backoff out instead of spending rows' attempts."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence

from . import metrics as m
from ._lease_guard import lease_deadline
from .envelope import deduplication_id, envelope_json, message_attributes, message_group_id, message_size
from .exceptions import OutboxError, PublishError
from .metrics import MetricsSink
from .options import RelayOptions
from .publisher import BatchOutcome, EntryFailure, OutboundMessage, Publisher
from .store import ClaimedRow, Release
from .tracing import trace_id_of, xray_header_from_json

__all__ = ["Backoff", "Pacer", "Sender", "build_messages", "pack_batches"]

log = logging.getLogger("outbox_relay")


def pack_batches(
    messages: list[OutboundMessage], *, max_entries: int, max_bytes: int
) -> list[list[OutboundMessage]]:
    """Pack messages into requests; a group's rows are consecutive and never split across
    requests (requests run concurrently and would race)."""
    by_group: dict[str, list[OutboundMessage]] = {}
    for msg in messages:  # messages come in id order, so each list is in commit order
        by_group.setdefault(msg.group_id, []).append(msg)
    batches: list[list[OutboundMessage]] = []
    current: list[OutboundMessage] = []
    size = 0
    for run in by_group.values():
        run_size = sum(x.size for x in run)
        if current and (len(current) + len(run) > max_entries or size + run_size > max_bytes):
            batches.append(current)
            current, size = [], 0
        while run and (len(run) > max_entries or run_size > max_bytes):
            run.pop()  # the tail of an oversized run waits for the next claim
            run_size = sum(x.size for x in run)
        current.extend(run)
        size += run_size
    if current:
        batches.append(current)
    return batches


def build_messages(
    rows: Sequence[ClaimedRow], *, max_bytes: int
) -> tuple[list[OutboundMessage], list[Release]]:
    """The SQS message of each claimed row; a row that cannot become one is dead at once."""
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
            if size > max_bytes:
                raise OutboxError(f"message is {size:,} bytes, over the {max_bytes:,}-byte limit")
            messages.append(
                OutboundMessage(
                    row_id=r.id,
                    event_id=event_id,
                    group_id=message_group_id(r.aggregate_type, r.aggregate_key),
                    deduplication_id=deduplication_id(r.event_id),
                    body=body,
                    attributes=attrs,
                    size=size,
                    trace_header=xray_header_from_json(r.headers),
                )
            )
        except OutboxError as exc:
            # A poison row (written around enqueue's checks): dead now, the rest flows on.
            releases.append(Release(r.id, f"poison: {exc}", 0.0, True, dead=True, maybe_sent=False))
    return messages, releases


class Backoff:
    """Relay-wide backoff: every failure (SQS unreachable, throttled, credentials, the database)
    pushes the whole relay's next attempt out, exponentially in the number of consecutive
    failures, with full jitter so that relays retrying together spread out; one success resets
    it. Shared by the pipelines and sender threads."""

    def __init__(self, base: float, maximum: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._base = base
        self._max = maximum
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._until = 0.0

    def fail(self, *, short: bool = False) -> float:
        """Record a failure; return the delay before the relay tries again. ``short`` (throttling)
        waits a fixed 1-4x base: the quota refills within a second, growing the wait loses
        throughput for nothing."""
        with self._lock:
            self._failures += 1
            if short:
                delay = random.uniform(self._base, self._base * 4)
            else:
                ceiling = min(self._max, self._base * 2 ** min(self._failures, 20))
                delay = random.uniform(ceiling / 2, ceiling)
            self._until = max(self._until, self._clock() + delay)
            return delay

    def succeeded(self) -> None:
        with self._lock:
            self._failures = 0

    def remaining(self) -> float:
        with self._lock:
            return max(0.0, self._until - self._clock())

    @property
    def failures(self) -> int:
        return self._failures


class Pacer:
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


class Sender:
    """Sends one batch and turns every way it can fail into per-row outcomes, classified once:
    an entry SQS rejected for its own content spends that row's attempt; a request-level
    failure backs the whole relay off (``backoff``) and spends nothing."""

    def __init__(
        self,
        publisher: Publisher,
        *,
        options: RelayOptions,
        metrics: MetricsSink,
        backoff: Backoff,
        pacer: Pacer | None,
        clock: Callable[[], float],
    ) -> None:
        self._publisher = publisher
        self._options = options
        self._metrics = metrics
        self._backoff = backoff
        self._pacer = pacer
        self._clock = clock
        self._attempt_seconds: float | None = None

    def pace(self, pacer: Pacer) -> None:
        """Pace the sends from now on (the relay's check found the destination's quota)."""
        self._pacer = pacer

    def attempt_seconds(self) -> float:
        """How much lease an attempt needs before it may start: the publisher's declared
        bound, or 0 (refuse only past the lease) when it declares none or one too long for the
        lease to leave any time to send, which is logged once."""
        if self._attempt_seconds is None:
            declared = float(getattr(self._publisher, "attempt_seconds", 0.0) or 0.0)
            lease = self._options.lease_seconds
            if declared > lease / 2:
                log.warning(
                    "one publish attempt may take %.1fs (the client's connect + read timeouts), over"
                    " half the %.1fs lease: attempts are refused only once the lease is over, so a"
                    " slow attempt may land after another relay re-sent its rows. Give the client"
                    " shorter timeouts or raise RelayOptions.lease_seconds",
                    declared,
                    lease,
                )
                declared = 0.0
            self._attempt_seconds = declared
        return self._attempt_seconds

    def send(self, batch: list[OutboundMessage], lease_end: float) -> BatchOutcome:
        if self._pacer is not None:
            self._pacer.wait()
        needed = self.attempt_seconds()
        if self._clock() + needed > lease_end:
            # Our lease may pass to another relay before this request ends: sending now could
            # overtake the rows' next owner.
            return _not_tried(batch, "LeaseExpired", "lease about to expire")
        started = time.perf_counter()
        with lease_deadline(lease_end, self._clock, needed):  # the one-by-one resends too
            try:
                outcome = self._publisher.publish_batch(batch)
                self._backoff.succeeded()
            except PublishError as exc:
                if exc.request_level:
                    return self._request_failed(batch, exc)
                # The service refused the request as a whole; find the entry at fault by sending
                # them one by one, so that only its row is charged.
                outcome = self._send_singly(batch, exc) if len(batch) > 1 else _rejected(batch, exc)
            except Exception as exc:  # a publisher bug must not kill the relay or lose the rows
                log.exception("publisher raised")
                outcome = BatchOutcome(
                    failed=[
                        EntryFailure(
                            row_id=x.row_id, code=type(exc).__name__, reason=str(exc), maybe_delivered=True
                        )
                        for x in batch
                    ]
                )
        self._metrics.timing(m.BATCH_LATENCY, (time.perf_counter() - started) * 1000)
        if log.isEnabledFor(logging.DEBUG):
            _log_sent(batch, outcome)
        return outcome

    def _request_failed(self, batch: list[OutboundMessage], exc: PublishError) -> BatchOutcome:
        if exc.cause == "lease":  # not the service's failure: no backoff, nothing spent
            return _not_tried(batch, "LeaseExpired", str(exc), maybe_delivered=exc.maybe_delivered)
        delay = self._backoff.fail(short=exc.throttled)
        self._metrics.count(m.REQUEST_FAILED)
        if exc.throttled:
            self._metrics.count(m.THROTTLED)
        log.warning(
            "publish request failed (%s): %s; the relay backs off %.2fs, no attempt spent on its %d rows",
            exc.cause,
            exc,
            delay,
            len(batch),
        )
        code = "throttled" if exc.throttled else f"request failed ({exc.cause})"
        return _not_tried(batch, code, str(exc), throttled=exc.throttled, maybe_delivered=exc.maybe_delivered)

    def _send_singly(self, batch: list[OutboundMessage], first: PublishError) -> BatchOutcome:
        log.warning("request of %d entries refused (%s): sending them one by one", len(batch), first)
        total = BatchOutcome()
        stopped: set[str] = set()  # a group whose entry failed: its later rows must wait
        for msg in batch:
            if msg.group_id in stopped:
                total.failed.extend(_not_tried([msg], "HeldBehindFailure", "an earlier row failed").failed)
                continue
            try:
                one = self._publisher.publish_batch([msg])
            except PublishError as exc:
                one = self._request_failed([msg], exc) if exc.request_level else _rejected([msg], exc)
            total.succeeded.extend(one.succeeded)
            total.failed.extend(one.failed)
            if one.failed:
                stopped.add(msg.group_id)
        return total

    def release_for(self, failure: EntryFailure, attempts: int) -> Release:
        opts = self._options
        reason = f"{failure.code}: {failure.reason}"
        if failure.throttled or failure.request_level:
            # not this row's fault: wait as long as the relay does, spend nothing
            delay = max(self._backoff.remaining(), opts.backoff_base_seconds)
            return Release(failure.row_id, reason, delay, False, maybe_sent=failure.maybe_delivered)
        if failure.permanent:
            return Release(failure.row_id, reason, 0.0, True, dead=True, maybe_sent=failure.maybe_delivered)
        # exponential backoff with full jitter, so relays retrying together spread out
        ceiling = min(opts.backoff_max_seconds, opts.backoff_base_seconds * 2 ** min(attempts, 20))
        delay = random.uniform(opts.backoff_base_seconds / 2, max(ceiling, opts.backoff_base_seconds))
        return Release(failure.row_id, reason, delay, True, maybe_sent=failure.maybe_delivered)


def _log_sent(batch: Sequence[OutboundMessage], outcome: BatchOutcome) -> None:
    """One record per accepted entry, with the keys every hop logs (the execution name is the
    dispatcher's to know: it depends on the routes)."""
    accepted = set(outcome.succeeded)
    for msg in batch:
        if msg.row_id in accepted:
            log.debug(
                "event sent",
                extra={
                    "event_id": msg.event_id,
                    "aggregate": msg.group_id,
                    "trace_id": trace_id_of(msg.trace_header),
                },
            )


def _not_tried(
    batch: Sequence[OutboundMessage],
    code: str,
    reason: str,
    *,
    throttled: bool = False,
    maybe_delivered: bool = False,
) -> BatchOutcome:
    """Every entry released untouched: no attempt spent (the failure was not theirs)."""
    return BatchOutcome(
        failed=[
            EntryFailure(
                row_id=x.row_id,
                code=code,
                reason=reason,
                throttled=throttled,
                request_level=True,
                maybe_delivered=maybe_delivered,
            )
            for x in batch
        ]
    )


def _rejected(batch: Sequence[OutboundMessage], exc: PublishError) -> BatchOutcome:
    """A one-entry request the service refused as malformed: that entry's own fault."""
    return BatchOutcome(
        failed=[
            EntryFailure(row_id=x.row_id, code="RequestRejected", reason=str(exc), permanent=True)
            for x in batch
        ]
    )
