"""DynamoDB as the outbox: the outbox item rides in the caller's ``TransactWriteItems``.

The business item(s) and the outbox item(s) are written by one transaction, so both or neither
exist; DynamoDB Streams then carries each outbox item to the stream consumer
(``saga_outbox.lambdas.handlers.stream``), which publishes it to SQS FIFO with the same
MessageGroupId and MessageDeduplicationId as the PostgreSQL relay.

Table layout (see ``docs/dynamodb.md``):

=============  ==============================================================================
``pk`` (S)     the aggregate's MessageGroupId ``type:key`` (':' is refused in types, so it is
               unambiguous): one aggregate's events share a partition key
``sk`` (S)     ``"counter"`` for the aggregate's sequence item, else the event's sequence
               number zero-padded to 20 digits (sorts as a number)
``kind`` (S)   ``"counter"`` or ``"event"``: the stream consumer takes ``INSERT`` of events only
``seq`` (N)    the counter's last number / the event's number, 1, 2, 3 ... per aggregate
``expires_at`` TTL (epoch seconds): events and counters expire ``retention`` after their write
=============  ==============================================================================

Order: DynamoDB Streams orders records *per item*; events are distinct items, so the stream
does not promise their order even within one partition key. Each transaction therefore also
updates the aggregate's counter item under a condition on its previous value: two writers of
one aggregate cannot both commit the same number, and the numbers give a total order per
aggregate that the consumer restores within a batch and can check.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ._dynamodb_stream import PoisonRecordError, RecordFailed, StreamOutcome, StreamRelay, stream_message
from .envelope import SQS_MAX_MESSAGE_BYTES, message_group_id
from .exceptions import ConfigurationError, InvalidEventError, OutboxError, PayloadTooLargeError
from .schema import DEFAULT_SCHEMA

__all__ = [
    "DYNAMODB_ITEM_MAX_BYTES",
    "TRANSACT_MAX_ITEMS",
    "DynamoDbOutbox",
    "DynamoDbOutboxError",
    "OutboxEvent",
    "PoisonRecordError",
    "RecordFailed",
    "StreamOutcome",
    "StreamRelay",
    "TransactionCancelledError",
    "TransactionTooLargeError",
    "item_size",
    "stream_message",
]

#: DynamoDB's item size limit (attribute names + values), 400 KB
DYNAMODB_ITEM_MAX_BYTES = 400 * 1024
#: actions one TransactWriteItems may hold
TRANSACT_MAX_ITEMS = 100
COUNTER_SK = "counter"
_SEQ_WIDTH = 20
# A number attribute takes at most 21 bytes; the item-size check counts every number at that.
_NUMBER_BYTES = 21


class DynamoDbOutboxError(OutboxError):
    """A DynamoDB request of the outbox failed (translated from botocore; ``code`` is AWS's)."""

    def __init__(self, message: str, *, code: str = "", retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable


class TransactionCancelledError(DynamoDbOutboxError):
    """The transaction was cancelled for one of the caller's items (a condition check failed):
    nothing was written, no event will be published. ``reasons`` are AWS's, aligned with
    ``TransactItems`` (business items first)."""

    def __init__(self, message: str, *, reasons: Sequence[Mapping[str, Any]]) -> None:
        super().__init__(message, code="TransactionCanceledException")
        self.reasons = list(reasons)


class TransactionTooLargeError(InvalidEventError):
    """Business items plus outbox items exceed what one ``TransactWriteItems`` may hold."""


@dataclass(frozen=True, kw_only=True, slots=True)
class OutboxEvent:
    """One event for :meth:`DynamoDbOutbox.transact_items`, with :func:`outbox_relay.enqueue`'s
    arguments and checks."""

    aggregate_type: str
    aggregate_key: str
    event_type: str
    payload: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)
    event_id: uuid.UUID | str | None = None


@dataclass(frozen=True, slots=True)
class _Checked:
    event_id: uuid.UUID
    group: str
    event: OutboxEvent
    payload_json: str
    headers_json: str


class DynamoDbOutbox:
    """Builds the outbox part of a ``TransactWriteItems`` on ``table_name``.

    ``dynamodb_client`` is a boto3 DynamoDB *client* (injected, or created lazily on first use);
    nothing here touches the network before :meth:`transact_items` / :meth:`transact_write`.
    ``retention_seconds`` sets the TTL of what is written (the stream keeps records 24 h:
    anything shorter would let an item expire before a stalled consumer reads it).
    """

    def __init__(
        self,
        *,
        table_name: str,
        dynamodb_client: Any = None,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        retention_seconds: int = 3 * 86400,
        max_message_bytes: int = SQS_MAX_MESSAGE_BYTES,
        clock: Any = time.time,
    ) -> None:
        if not isinstance(table_name, str) or not 3 <= len(table_name) <= 255:
            raise ConfigurationError(f"table_name {table_name!r} is not a DynamoDB table name (3-255 chars)")
        if not isinstance(retention_seconds, int) or retention_seconds < 86400:
            raise ConfigurationError(
                f"retention_seconds={retention_seconds!r}: keep outbox items at least 86400 s (the "
                "stream's 24 h), or an item could expire before a stalled consumer reads it"
            )
        self.table_name = table_name
        self.retention_seconds = retention_seconds
        self.max_message_bytes = max_message_bytes
        self._client = dynamodb_client
        self._region_name = region_name
        self._endpoint_url = endpoint_url
        self._clock = clock

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client(
                "dynamodb", region_name=self._region_name, endpoint_url=self._endpoint_url
            )
        return self._client

    # -- public ------------------------------------------------------------------------------
    def check(self, events: Sequence[OutboxEvent | Mapping[str, Any]]) -> list[uuid.UUID]:
        """Every check of :meth:`transact_items`, without a request: the event ids."""
        return [c.event_id for c in self._check_all(events)]

    def transact_items(
        self, events: Sequence[OutboxEvent | Mapping[str, Any]], *, business_items: int = 0
    ) -> list[dict[str, Any]]:
        """The ``TransactItems`` entries that write ``events`` (add them to your own).

        Reads each aggregate's counter (one consistent ``GetItem`` per aggregate), then returns,
        per aggregate, an ``Update`` of its counter conditioned on the value read and one ``Put``
        per event. If another writer of the aggregate commits first, your transaction is
        cancelled on the counter's condition: build the items again and retry
        (:meth:`transact_write` does). ``business_items`` (how many items of yours join) is
        only checked against the 100-item limit. Raises before any request on bad input."""
        checked = self._check_all(events, business_items=business_items)
        return self._items(checked, self._read_counters({c.group for c in checked}))

    def transact_write(
        self,
        items: Sequence[Mapping[str, Any]],
        events: Sequence[OutboxEvent | Mapping[str, Any]],
        *,
        max_attempts: int = 5,
    ) -> list[uuid.UUID]:
        """``TransactWriteItems`` of your ``items`` plus the outbox items of ``events``; returns
        the event ids. Retries only when a concurrent writer of the same aggregate took the
        sequence number (or DynamoDB reports a transaction conflict); a cancellation for one of
        your items raises :class:`TransactionCancelledError` (nothing written)."""
        checked = self._check_all(events, business_items=len(items))
        for attempt in range(1, max_attempts + 1):
            outbox_items = self._items(checked, self._read_counters({c.group for c in checked}))
            try:
                self.client.transact_write_items(TransactItems=[*items, *outbox_items])
                return [c.event_id for c in checked]
            except Exception as exc:
                self._raise_unless_race(exc, business_items=len(items))  # else: re-read, retry
                if attempt == max_attempts:
                    raise DynamoDbOutboxError(
                        f"TransactWriteItems on {self.table_name}: the aggregates' sequence kept "
                        f"moving under {max_attempts} attempts (hot aggregate)",
                        code="SequenceContention",
                        retryable=True,
                    ) from exc
                time.sleep(min(0.5, 0.01 * 2**attempt))
        raise AssertionError("unreachable")

    # -- internals ---------------------------------------------------------------------------
    def _check_all(
        self, events: Sequence[OutboxEvent | Mapping[str, Any]], *, business_items: int = 0
    ) -> list[_Checked]:
        from .writer import _prepare

        if isinstance(events, str | bytes | Mapping) or not isinstance(events, Sequence) or not events:
            raise InvalidEventError(f"events must be a non-empty list of OutboxEvent, got {events!r:.80}")
        checked: list[_Checked] = []
        for raw in events:
            event = raw if isinstance(raw, OutboxEvent) else _event(raw)
            # enqueue's own checks and JSON (the SQL it also builds is not used here)
            eid, _sql, params = _prepare(
                aggregate_type=event.aggregate_type,
                aggregate_key=event.aggregate_key,
                event_type=event.event_type,
                payload=event.payload,
                headers=event.headers,
                event_id=event.event_id,
                available_at=None,
                schema=DEFAULT_SCHEMA,
                max_message_bytes=self.max_message_bytes,
            )
            checked.append(
                _Checked(
                    event_id=eid,
                    group=message_group_id(event.aggregate_type, event.aggregate_key),
                    event=event,
                    payload_json=params["payload"],
                    headers_json=params["headers"],
                )
            )
        ids = [c.event_id for c in checked]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise InvalidEventError(f"event {dup} appears twice in one transaction")
        total = business_items + len(checked) + len({c.group for c in checked})
        if total > TRANSACT_MAX_ITEMS:
            raise TransactionTooLargeError(
                f"{business_items} business items + {len(checked)} events + "
                f"{len({c.group for c in checked})} sequence counters = {total} items, over "
                f"TransactWriteItems' {TRANSACT_MAX_ITEMS}; split the command"
            )
        for c in checked:
            size = item_size(self._event_item(c, seq=0, occurred_at="", expires_at=0))
            # the ISO timestamp is added at write time: count its fixed width now
            size += len("2026-01-01T00:00:00.000000+00:00")
            if size > DYNAMODB_ITEM_MAX_BYTES:
                raise PayloadTooLargeError(
                    f"event {c.event_id} ({c.event.event_type}): the outbox item would be {size:,} bytes, "
                    f"over DynamoDB's {DYNAMODB_ITEM_MAX_BYTES:,}-byte item limit; store the payload "
                    "elsewhere (e.g. S3) and enqueue a reference to it (claim-check pattern)",
                    event_id=str(c.event_id),
                    size=size,
                    limit=DYNAMODB_ITEM_MAX_BYTES,
                )
        return checked

    def _read_counters(self, groups: set[str]) -> dict[str, int]:
        current: dict[str, int] = {}
        for group in sorted(groups):
            try:
                item = self.client.get_item(
                    TableName=self.table_name,
                    Key={"pk": {"S": group}, "sk": {"S": COUNTER_SK}},
                    ConsistentRead=True,
                    ProjectionExpression="seq",
                ).get("Item")
            except Exception as exc:
                raise _translate(exc, f"GetItem of the sequence of {group} on {self.table_name}") from exc
            current[group] = int(item["seq"]["N"]) if item else 0
        return current

    def _items(self, checked: Sequence[_Checked], current: Mapping[str, int]) -> list[dict[str, Any]]:
        now = self._clock()
        occurred_at = datetime.fromtimestamp(now, UTC).isoformat(timespec="microseconds")
        expires_at = int(now) + self.retention_seconds
        next_seq = dict(current)
        puts: list[dict[str, Any]] = []
        for c in checked:  # in the caller's order: that is the aggregate's order
            next_seq[c.group] += 1
            item = self._event_item(c, seq=next_seq[c.group], occurred_at=occurred_at, expires_at=expires_at)
            puts.append(
                {
                    "Put": {
                        "TableName": self.table_name,
                        "Item": item,
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            )
        counters: list[dict[str, Any]] = []
        for group in sorted(next_seq):
            before = current[group]
            update: dict[str, Any] = {
                "TableName": self.table_name,
                "Key": {"pk": {"S": group}, "sk": {"S": COUNTER_SK}},
                "UpdateExpression": "SET seq = :next, kind = :kind, expires_at = :exp",
                "ExpressionAttributeValues": {
                    ":next": {"N": str(next_seq[group])},
                    ":kind": {"S": "counter"},
                    ":exp": {"N": str(expires_at)},
                },
            }
            if before:
                update["ConditionExpression"] = "seq = :before"
                update["ExpressionAttributeValues"][":before"] = {"N": str(before)}
            else:
                update["ConditionExpression"] = "attribute_not_exists(seq)"
            counters.append({"Update": update})
        return counters + puts

    @staticmethod
    def _event_item(c: _Checked, *, seq: int, occurred_at: str, expires_at: int) -> dict[str, Any]:
        e = c.event
        return {
            "pk": {"S": c.group},
            "sk": {"S": f"{seq:0{_SEQ_WIDTH}d}"},
            "kind": {"S": "event"},
            "seq": {"N": str(seq)},
            "event_id": {"S": str(c.event_id)},
            "event_type": {"S": e.event_type},
            "aggregate_type": {"S": e.aggregate_type},
            "aggregate_key": {"S": e.aggregate_key},
            "occurred_at": {"S": occurred_at},
            "payload": {"S": c.payload_json},
            "headers": {"S": c.headers_json},
            "expires_at": {"N": str(expires_at)},
        }

    def _raise_unless_race(self, exc: Exception, *, business_items: int) -> None:
        """Returns when the cancellation is the outbox's own race (a retry can succeed); raises
        a translated error for everything else."""
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        if code != "TransactionCanceledException":
            raise _translate(exc, f"TransactWriteItems on {self.table_name}") from exc
        reasons = list(getattr(exc, "response", {}).get("CancellationReasons") or _reasons_from(exc))
        mine = [r for r in reasons[:business_items] if r.get("Code", "None") != "None"]
        if mine:
            raise TransactionCancelledError(
                f"TransactWriteItems cancelled by your item(s): {[r.get('Code') for r in mine]} "
                f"({exc}); nothing was written",
                reasons=reasons,
            ) from exc
        outbox = [r.get("Code", "None") for r in reasons[business_items:]]
        if reasons and all(
            code in ("None", "ConditionalCheckFailed", "TransactionConflict") for code in outbox
        ):
            return
        raise _translate(exc, f"TransactWriteItems on {self.table_name}") from exc


def _event(raw: Mapping[str, Any]) -> OutboxEvent:
    if not isinstance(raw, Mapping):
        raise InvalidEventError(f"an event must be an OutboxEvent or a mapping, got {type(raw).__name__}")
    unknown = set(raw) - set(OutboxEvent.__dataclass_fields__)
    if unknown:
        raise InvalidEventError(f"unknown event field(s) {sorted(unknown)}")
    try:
        return OutboxEvent(**raw)
    except TypeError as exc:
        raise InvalidEventError(f"event {dict(raw)!r:.120} is missing a field: {exc}") from exc


def _reasons_from(exc: Exception) -> list[dict[str, str]]:
    # moto (and older botocore) put the reasons only in the message: "[None, ConditionalCheckFailed]"
    text = str(exc)
    start, end = text.rfind("["), text.rfind("]")
    if start < 0 or end < start:
        return []
    return [{"Code": part.strip() or "None"} for part in text[start + 1 : end].split(",")]


def _translate(exc: Exception, what: str) -> Exception:
    from .publisher import request_cause

    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        if isinstance(exc, OutboxError):
            return exc
        return DynamoDbOutboxError(f"{what} failed: {type(exc).__name__}: {exc}", retryable=True)
    code = response.get("Error", {}).get("Code", "")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    cause = request_cause(code, status)
    if code == "ProvisionedThroughputExceededException":
        cause = "throttled"
    return DynamoDbOutboxError(f"{what} failed: {code}: {exc}", code=code, retryable=cause != "rejected")


def item_size(item: Mapping[str, Mapping[str, str]]) -> int:
    """An upper bound of DynamoDB's size of ``item``: names and string values in UTF-8 bytes,
    each number at its 21-byte maximum."""
    size = 0
    for name, value in item.items():
        size += len(name.encode("utf-8"))
        if "S" in value:
            size += len(value["S"].encode("utf-8"))
        else:
            size += _NUMBER_BYTES
    return size
