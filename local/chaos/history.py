"""What a chaos run records in the harness process (it survives every relay kill), and the
model of SQS FIFO's 5-minute deduplication window.

moto's FIFO dedup only compares against messages still in the queue and has no time window.
Real SQS drops a repeated MessageDeduplicationId for 5 minutes after the first send, even when
the first message was already deleted, and accepts it again afterwards (a real duplicate).
:class:`SqsDedupModel` patches ONE point of moto in the process hosting the moto server,
``moto.sqs.models.Queue.add_message`` (called for every accepted SendMessage/SendMessageBatch
entry), for one named queue: within the window (a controllable clock) the entry is accepted
but not enqueued; outside it, it is enqueued again. Every accepted entry is recorded.

moto's FIFO receive also breaks the group lock: ``SQSBackend.receive_message`` is not atomic
(two concurrent receivers can both take messages of one group) and, when a batch's visibility
timeout expires, it releases the group's messages one by one while iterating, so it can
deliver the LAST message of the expired batch first. SQS FIFO never does either. The model
therefore wraps ``moto.sqs.models.SQSBackend.receive_message`` for the same queue: under one
lock, messages whose visibility expired leave the in-flight set first, then moto's receive
runs (group heads in send order). These are the only two patches; both are undone on exit.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["History", "Receipt", "SendRecord", "SqsDedupModel"]

DEDUP_WINDOW_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class SendRecord:
    """One entry SQS accepted. ``outcome``: ``enqueued`` (first send), ``dedup_dropped`` (same
    dedup id within the window: accepted, not enqueued) or ``late_enqueued`` (same dedup id
    after the window: a real duplicate)."""

    group_id: str
    deduplication_id: str
    event_id: str
    at: float
    outcome: str


@dataclass(frozen=True, slots=True)
class Receipt:
    """One record the dispatcher processed successfully (in processing order)."""

    group_id: str
    event_id: str
    event_type: str
    receive_count: int


@dataclass
class History:
    sends: list[SendRecord] = field(default_factory=list)
    receipts: list[Receipt] = field(default_factory=list)
    kills: list[dict[str, Any]] = field(default_factory=list)
    relay_exits: list[dict[str, Any]] = field(default_factory=list)
    faults: dict[str, int] = field(default_factory=dict)
    late_resend_requests: set[str] = field(default_factory=set)
    events_enqueued: int = 0
    sagas_started: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._received: set[str] = set()
        self.plain_received = 0
        #: first receipts per event type (the producer's pacing of sagas)
        self.received_by_type: dict[str, int] = {}

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.faults[name] = self.faults.get(name, 0) + n

    def record_send(self, record: SendRecord) -> None:
        with self._lock:
            self.sends.append(record)

    def record_receipts(self, receipts: Iterable[Receipt], *, plain_type: str | None = None) -> None:
        with self._lock:
            for r in receipts:
                self.receipts.append(r)
                if r.event_id not in self._received:
                    self._received.add(r.event_id)
                    self.received_by_type[r.event_type] = self.received_by_type.get(r.event_type, 0) + 1
                    if r.event_type == plain_type:
                        self.plain_received += 1

    def record_kill(self, **info: Any) -> None:
        with self._lock:
            self.kills.append(info)


def _event_id(body: str) -> str:
    try:
        return str(json.loads(body).get("event_id", ""))
    except (ValueError, AttributeError):
        return ""


class SqsDedupModel:
    """SQS FIFO's dedup window over moto (see the module docstring). ``advance`` moves the
    model's clock; ``backdate`` ages chosen dedup ids past the window."""

    def __init__(
        self,
        history: History,
        *,
        queue_name: str,
        window_seconds: float = DEDUP_WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.history = history
        self.queue_name = queue_name
        self.window = window_seconds
        self._clock = clock
        self._offset = 0.0
        self._first: dict[str, float] = {}
        self._lock = threading.Lock()
        self._original: Any = None
        self._original_receive: Any = None
        self._receive_lock = threading.Lock()
        self._original_attributes: Any = None
        self._attributes_cache: tuple[float, Any] | None = None

    def now(self) -> float:
        return self._clock() + self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds

    def backdate(self, deduplication_ids: Iterable[str]) -> None:
        with self._lock:
            for d in deduplication_ids:
                if d in self._first:
                    self._first[d] -= self.window + 1.0

    def install(self) -> None:
        from moto.sqs.models import Queue

        if self._original is not None:
            return
        original = Queue.add_message
        self._original = original
        model = self

        def add_message(queue: Any, message: Any) -> None:
            dedup = getattr(message, "deduplication_id", None)
            if queue.name != model.queue_name or not queue.fifo_queue or not dedup:
                return original(queue, message)
            now = model.now()
            with model._lock:
                first = model._first.get(dedup)
                if first is not None and now - first < model.window:
                    outcome = "dedup_dropped"
                else:
                    outcome = "enqueued" if first is None else "late_enqueued"
                    model._first[dedup] = now
            model.history.record_send(
                SendRecord(message.group_id or "", dedup, _event_id(message.body), now, outcome)
            )
            if outcome == "dedup_dropped":
                return None  # what SQS does: the send succeeds, nothing is enqueued
            # enqueue without moto's own in-queue dedup (the window above replaces it)
            with queue._messages_lock:
                queue._messages.append(message)
                queue._messages_lock.notify_all()
            return None

        Queue.add_message = add_message  # type: ignore[method-assign,assignment]

        from moto.sqs.models import SQSBackend

        original_receive = SQSBackend.receive_message
        self._original_receive = original_receive

        def receive_message(backend: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
            if queue_name != model.queue_name:
                return original_receive(backend, queue_name, *args, **kwargs)
            with model._receive_lock:
                queue = backend.get_queue(queue_name)
                expired = [m for m in list(queue.pending_messages) if m.visible]
                for m in expired:
                    queue.pending_messages.discard(m)
                return original_receive(backend, queue_name, *args, **kwargs)

        SQSBackend.receive_message = receive_message  # type: ignore[method-assign,assignment]

        # Not a semantic patch: moto recomputes the queue's attributes (four scans of the whole
        # queue) up to three times per sent entry; a 0.25 s cache keeps the harness CPU for
        # the system under test. Approximate counts are approximate on SQS too.
        original_attributes: Any = Queue.__dict__["attributes"]  # the property object
        self._original_attributes = original_attributes

        def attributes(queue: Any) -> Any:
            if queue.name != model.queue_name:
                return original_attributes.fget(queue)
            now, cached = time.monotonic(), model._attributes_cache
            if cached is not None and now - cached[0] < 0.25:
                return cached[1]
            value = original_attributes.fget(queue)
            model._attributes_cache = (now, value)
            return value

        Queue.attributes = property(attributes)  # type: ignore[method-assign,assignment]

    def uninstall(self) -> None:
        if self._original is not None:
            from moto.sqs.models import Queue, SQSBackend

            Queue.add_message = self._original  # type: ignore[method-assign,assignment]
            SQSBackend.receive_message = self._original_receive  # type: ignore[method-assign,assignment]
            Queue.attributes = self._original_attributes  # type: ignore[method-assign,assignment]
            self._original = None
