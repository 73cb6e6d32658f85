"""DynamoDB Streams records of the outbox table → the same SQS FIFO messages the relay sends.

:class:`StreamRelay` publishes one batch of stream records (as the Lambda event source hands
them over) through any :class:`~outbox_relay.publisher.Publisher` and returns the outcome of
each record by its ``SequenceNumber``; the Lambda handler turns failures into
``batchItemFailures``. Rules:

* only ``INSERT`` of ``kind = "event"`` items are published (counter updates, TTL deletions and
  modifications are acknowledged);
* per aggregate, records go out in ``seq`` order (sorted within the batch, since the stream only
  orders each item's own changes), and at most one record of an aggregate per request, so a
  failed entry can never have a later entry of its group accepted beside it; once a record of
  an aggregate fails, its later records are held back and reported failed too;
* a record that cannot become a message (malformed item) or an entry SQS refuses for its
  content fails alone (with the rest of its aggregate): the event source retries it, bisects
  and, when its retries are spent, sends it to the on-failure destination;
* a request-level failure (connection, throttling, 5xx, credentials, permissions: the
  publisher's classification) is retried here with a short backoff; if it persists, every
  record not yet published is reported failed, none singled out as poison.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .envelope import deduplication_id, envelope_json, message_attributes, message_group_id, message_size
from .exceptions import OutboxError, PublishError
from .metrics import MetricsSink, NullMetrics
from .publisher import OutboundMessage, Publisher

__all__ = ["PoisonRecordError", "RecordFailed", "StreamOutcome", "StreamRelay", "stream_message"]

log = logging.getLogger("outbox_relay.dynamodb")


class RecordFailed(OutboxError):
    """A stream record was not published; ``request_level`` says the cause was the request or
    the service, not the record."""

    def __init__(self, message: str, *, request_level: bool = False, held_back: bool = False) -> None:
        super().__init__(message)
        self.request_level = request_level
        self.held_back = held_back


class PoisonRecordError(RecordFailed):
    """The record cannot become a message, or SQS refused its entry for its content."""


@dataclass(kw_only=True)
class StreamOutcome:
    published: list[str] = field(default_factory=list)  #: sequence numbers
    skipped: list[str] = field(default_factory=list)  #: not outbox events (counter, REMOVE, MODIFY)
    failed: dict[str, RecordFailed] = field(default_factory=dict)
    reordered: int = 0  #: records the stream delivered before a lower seq of their aggregate


@dataclass(frozen=True, slots=True)
class _Event:
    sequence_number: str
    group: str
    seq: int
    message: OutboundMessage


def _s(image: Mapping[str, Any], name: str) -> str:
    value = image.get(name, {}).get("S")
    if not isinstance(value, str):
        raise KeyError(name)
    return value


def stream_message(record: Mapping[str, Any], *, row_id: int = 0) -> tuple[str, int, OutboundMessage] | None:
    """``(group, seq, message)`` of an outbox ``INSERT`` record, None for any other record;
    raises :class:`PoisonRecordError` for an outbox record that cannot become a message."""
    ddb = record.get("dynamodb") or {}
    if record.get("eventName") != "INSERT":
        return None
    image = ddb.get("NewImage") or {}
    if image.get("kind", {}).get("S") != "event":
        return None
    try:
        event_id, event_type = _s(image, "event_id"), _s(image, "event_type")
        aggregate_type, aggregate_key = _s(image, "aggregate_type"), _s(image, "aggregate_key")
        body = envelope_json(
            event_id=event_id,
            event_type=event_type,
            aggregate_type=aggregate_type,
            aggregate_key=aggregate_key,
            occurred_at=datetime.fromisoformat(_s(image, "occurred_at")),
            headers_json=_s(image, "headers"),
            payload_json=_s(image, "payload"),
        )
        attributes = message_attributes(event_type)
        group = message_group_id(aggregate_type, aggregate_key)
        message = OutboundMessage(
            row_id=row_id,
            event_id=event_id,
            group_id=group,
            deduplication_id=deduplication_id(event_id),
            body=body,
            attributes=attributes,
            size=message_size(body, attributes),
        )
        seq = int(image["seq"]["N"])
    except (KeyError, ValueError, TypeError, OutboxError) as exc:
        keys = ddb.get("Keys", {})
        raise PoisonRecordError(
            f"stream record {ddb.get('SequenceNumber')} ({keys}) is not a valid outbox event: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return group, seq, message


class StreamRelay:
    """Publishes stream batches; one per consumer process (it keeps no state between batches)."""

    def __init__(
        self,
        *,
        publisher: Publisher,
        metrics: MetricsSink | None = None,
        request_attempts: int = 3,
        backoff_seconds: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.publisher = publisher
        self.metrics = metrics or NullMetrics()
        self.request_attempts = max(1, request_attempts)
        self.backoff_seconds = backoff_seconds
        self._sleep = sleep

    def publish(self, records: Sequence[Mapping[str, Any]]) -> StreamOutcome:
        outcome = StreamOutcome()
        by_group: dict[str, list[_Event]] = {}
        blocked: dict[str, str] = {}  # group -> why its later records are held back
        poisoned: dict[str, str] = {}  # group -> the poison record its later records wait for
        order: list[tuple[str, str | None]] = []  # (sequence number, group) in stream order
        for i, record in enumerate(records):
            number = str((record.get("dynamodb") or {}).get("SequenceNumber", i))
            try:
                parsed = stream_message(record, row_id=i)
            except PoisonRecordError as exc:
                group = _group_of(record)
                outcome.failed[number] = exc
                if group is not None:  # its later records wait; the earlier ones still go
                    poisoned.setdefault(group, f"held back behind poison record {number}")
                order.append((number, group))
                self.metrics.count("PoisonRecords")
                continue
            if parsed is None:
                outcome.skipped.append(number)
                continue
            group, seq, message = parsed
            order.append((number, group))
            if group in poisoned:
                continue  # held back (reported below)
            events = by_group.setdefault(group, [])
            if events and seq < events[-1].seq:
                outcome.reordered += 1
            events.append(_Event(number, group, seq, message))
        for events in by_group.values():
            events.sort(key=lambda e: e.seq)
        self._send_rounds(by_group, blocked, outcome)
        for number, group in order:  # a poison record's later records of its aggregate
            if number in outcome.failed or number in outcome.published:
                continue
            why = blocked.get(group or "") or poisoned.get(group or "", "not sent")
            outcome.failed[number] = RecordFailed(f"record {number} held back: {why}", held_back=True)
        if outcome.published:
            self.metrics.count("Published", len(outcome.published))
        if outcome.reordered:
            self.metrics.count("ReorderedRecords", outcome.reordered)
        return outcome

    def _send_rounds(
        self, by_group: dict[str, list[_Event]], blocked: dict[str, str], outcome: StreamOutcome
    ) -> None:
        position = dict.fromkeys(by_group, 0)
        while True:
            heads = [
                events[position[g]]
                for g, events in by_group.items()
                if g not in blocked and position[g] < len(events)
            ]
            if not heads:
                return
            for request in self._requests(heads):
                failure = self._send(request, blocked, outcome)
                if failure is not None:  # request-level and persistent: nothing more goes out
                    for g in by_group:
                        blocked.setdefault(g, failure)
                    return
            for g in position:
                position[g] += 1

    def _requests(self, heads: list[_Event]) -> list[list[_Event]]:
        requests: list[list[_Event]] = []
        current: list[_Event] = []
        size = 0
        for e in heads:
            if current and (
                len(current) >= self.publisher.max_batch_entries
                or size + e.message.size > self.publisher.max_batch_bytes
            ):
                requests.append(current)
                current, size = [], 0
            current.append(e)
            size += e.message.size
        if current:
            requests.append(current)
        return requests

    def _send(self, request: list[_Event], blocked: dict[str, str], outcome: StreamOutcome) -> str | None:
        by_row = {e.message.row_id: e for e in request}
        for attempt in range(1, self.request_attempts + 1):
            try:
                result = self.publisher.publish_batch([e.message for e in request])
                break
            except PublishError as exc:
                self.metrics.count("PublishRequestFailed")
                if not exc.request_level:
                    # the service refused the request as malformed: send the entries alone
                    if len(request) > 1:
                        for e in request:
                            self._send([e], blocked, outcome)
                        return None
                    e = request[0]
                    outcome.failed[e.sequence_number] = PoisonRecordError(
                        f"record {e.sequence_number}: {exc}"
                    )
                    blocked.setdefault(e.group, f"held back behind rejected record {e.sequence_number}")
                    return None
                if attempt == self.request_attempts:
                    reason = f"request-level failure ({exc.cause}): {exc}"
                    for e in request:
                        outcome.failed[e.sequence_number] = RecordFailed(reason, request_level=True)
                    return reason
                self._sleep(self.backoff_seconds * 2 ** (attempt - 1))
        outcome.published.extend(by_row[row].sequence_number for row in result.succeeded)
        for failure in result.failed:
            e = by_row[failure.row_id]
            if failure.permanent:
                error: RecordFailed = PoisonRecordError(
                    f"record {e.sequence_number}: {failure.code}: {failure.reason}"
                )
                self.metrics.count("PoisonRecords")
            else:
                error = RecordFailed(f"record {e.sequence_number}: {failure.code}: {failure.reason}")
                self.metrics.count("PublishFailed")
            outcome.failed[e.sequence_number] = error
            blocked.setdefault(e.group, f"held back behind failed record {e.sequence_number}")
        return None


def _group_of(record: Mapping[str, Any]) -> str | None:
    keys = (record.get("dynamodb") or {}).get("Keys") or {}
    pk = keys.get("pk", {}).get("S")
    return pk if isinstance(pk, str) else None
