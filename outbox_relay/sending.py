"""Pieces of the send step: packing batches, pacing calls, and the relay-wide backoff that
request-level and database failures trigger (instead of spending rows' attempts)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

from .publisher import OutboundMessage

__all__ = ["Backoff", "Pacer", "pack_batches"]


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
