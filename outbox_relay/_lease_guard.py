"""The lease as a deadline on the send path.

A relay may send a claimed row only while its lease holds: once it ends, another relay may
claim the row and send it (and its successors) first. Checking the clock once before a request
is not enough: the request itself, its retries inside the SDK, or a stall of the process can
outlast the lease. So the sender enters :func:`lease_deadline` around each publish call, and a
publisher checks :func:`check_attempt` just before every attempt goes on the wire (for SQS: a
botocore ``before-send`` hook), refusing an attempt that could not finish inside the lease.

What remains possible (see docs/operations.md, "Leases"): a process stopped after its bytes are
on the wire, or between the hook and the socket write, for longer than the lease. The other
relay's re-send of the same rows then reaches SQS within the five-minute deduplication window
unless the stall outlasts it, so SQS drops the late copy; consumers dedup on the event id.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["LeaseEnding", "check_attempt", "lease_deadline"]

_local = threading.local()


class LeaseEnding(Exception):
    """An attempt refused because it could not finish before the lease ends. Internal: the
    publisher turns it into a request-level :class:`~outbox_relay.exceptions.PublishError`."""

    def __init__(self, remaining: float, needed: float, attempts_made: int) -> None:
        super().__init__(f"{remaining:.2f}s of lease left, an attempt may take {needed:.2f}s")
        #: an earlier attempt of the same call went out: the service may have accepted it
        self.attempts_made = attempts_made


@contextmanager
def lease_deadline(lease_end: float, clock: Callable[[], float], attempt_seconds: float) -> Iterator[None]:
    """Within this block (one publish call, one thread), an attempt may start only if
    ``attempt_seconds`` from now is still before ``lease_end`` as measured by ``clock``."""
    previous = getattr(_local, "state", None)
    _local.state = [lease_end, clock, attempt_seconds, 0]
    try:
        yield
    finally:
        _local.state = previous


def check_attempt() -> None:
    """Raise :class:`LeaseEnding` unless the attempt about to start can end inside the lease.
    Outside :func:`lease_deadline` (a publisher used on its own) it never refuses."""
    state = getattr(_local, "state", None)
    if state is None:
        return
    lease_end, clock, needed, made = state
    remaining = lease_end - clock()
    if remaining < needed:
        raise LeaseEnding(remaining, needed, made)
    state[3] = made + 1
