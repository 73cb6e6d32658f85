"""The SQS side of the stateful property test: the fault hooks one relay's FaultySqsClient
calls (a request-level fault, a fault after SQS accepted, a request parked in flight), the
virtual clock, and deliberately broken senders the machine must catch.

The recorder and the 5-minute dedup window are the chaos harness's ``SqsDedupModel`` over moto
(``saga_outbox.local.chaos.history``): one model of SQS's window, not a second one here.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from outbox_relay import BatchOutcome, OutboundMessage, SqsFifoPublisher

__all__ = [
    "BROKEN_SENDERS",
    "BrokenSender",
    "Crash",
    "FreshDeduplicationIds",
    "RelayFaults",
    "ReportsDroppedEntriesSent",
    "ReversedBatches",
    "VirtualClock",
]


class Crash(BaseException):
    """The relay process dies: not an Exception, so no layer of the relay may swallow it."""


class VirtualClock:
    """Seconds that pass only when a step says so (the relays' clock and the dedup model's)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self) -> float:
        return self.seconds


@dataclass
class RelayFaults:
    """The hooks of one relay's FaultySqsClient: a request-level fault for its next calls, a
    fault after SQS accepted, and a one-shot stall that parks the next request in flight."""

    request: Callable[[], BaseException] | None = None
    after_accept: Callable[[], BaseException] | None = None
    stall: bool = False
    parked: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def before_call(self, _call: int) -> BaseException | None:
        if self.stall:
            self.stall = False
            self.parked.set()
            if not self.release.wait(60):
                return RuntimeError("a stalled request was never resumed")
        return self.request() if self.request else None

    def after_call(self, _entries: list[dict[str, Any]]) -> None:
        if self.after_accept is not None:
            raise self.after_accept()

    def clear(self) -> None:
        self.request = self.after_accept = None
        self.stall = False
        self.parked.clear()
        self.release.clear()


class BrokenSender:
    """A publisher wrapper that breaks one rule of the relay's contract with SQS."""

    max_batch_entries = SqsFifoPublisher.max_batch_entries
    max_batch_bytes = SqsFifoPublisher.max_batch_bytes

    def __init__(self, inner: SqsFifoPublisher) -> None:
        self.inner = inner

    def check(self) -> None:
        self.inner.check()

    def publish_batch(self, messages: Sequence[OutboundMessage]) -> BatchOutcome:
        raise NotImplementedError


class ReportsDroppedEntriesSent(BrokenSender):
    """Sends all but the last entry of a batch, reports them all sent."""

    def publish_batch(self, messages: Sequence[OutboundMessage]) -> BatchOutcome:
        if len(messages) > 1:
            self.inner.publish_batch(messages[:-1])
            return BatchOutcome(succeeded=[m.row_id for m in messages])
        return self.inner.publish_batch(messages)


class FreshDeduplicationIds(BrokenSender):
    """A new MessageDeduplicationId on every send: SQS cannot drop a re-send."""

    def publish_batch(self, messages: Sequence[OutboundMessage]) -> BatchOutcome:
        fresh = [dataclasses.replace(m, deduplication_id=uuid.uuid4().hex) for m in messages]
        return self.inner.publish_batch(fresh)


class ReversedBatches(BrokenSender):
    """Sends a batch's entries in reverse: a group's rows arrive last first."""

    def publish_batch(self, messages: Sequence[OutboundMessage]) -> BatchOutcome:
        return self.inner.publish_batch(list(reversed(messages)))


#: each broken sender and the message of the check that must catch it
BROKEN_SENDERS: list[tuple[type[BrokenSender], str]] = [
    (ReportsDroppedEntriesSent, "marked published that SQS never accepted"),
    (FreshDeduplicationIds, "sent with MessageDeduplicationId"),
    (ReversedBatches, "are not its commit order"),
]
