"""The message an outbox row becomes on SQS, and the deterministic ids SQS FIFO needs."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .exceptions import InvalidEventError, PayloadNotJsonError

__all__ = [
    "SQS_MAX_MESSAGE_BYTES",
    "OutboxEnvelope",
    "deduplication_id",
    "message_group_id",
    "replay_deduplication_id",
]

#: SQS allows 1 MiB per message (body + attributes) and per SendMessageBatch request.
SQS_MAX_MESSAGE_BYTES = 1_048_576
# SQS accepts alphanumerics and ASCII punctuation in group and deduplication ids.
_SQS_ID_CHARS = re.compile(r"^[A-Za-z0-9!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~]{1,128}$")
_OCCURRED_AT_WIDTH = len("2026-01-01T00:00:00.000000+00:00")


def deduplication_id(event_id: uuid.UUID | str) -> str:
    """The MessageDeduplicationId of an event: a pure function of its id, so every relay and
    every retry sends the same value and SQS drops re-sends inside its 5-minute window."""
    if isinstance(event_id, uuid.UUID):
        return str(event_id)
    return str(uuid.UUID(str(event_id)))


def replay_deduplication_id(run_id: str, event_id: uuid.UUID | str) -> str:
    """The MessageDeduplicationId of an event re-published by replay run ``run_id``: distinct
    from the original's (SQS would drop the replay inside its 5-minute window otherwise) and
    from other runs', yet the same on every retry and resume of one run."""
    digest = hashlib.sha256(f"{run_id}\x00{deduplication_id(event_id)}".encode()).hexdigest()
    return f"replay-{digest[:64]}"


def message_group_id(aggregate_type: str, aggregate_key: str) -> str:
    """MessageGroupId: one FIFO group per aggregate, so order holds per aggregate only."""
    group = f"{aggregate_type}:{aggregate_key}"
    if not _SQS_ID_CHARS.match(group):
        raise InvalidEventError(
            f"aggregate {group!r} cannot be an SQS MessageGroupId: it must be 1-128 characters "
            "of letters, digits and ASCII punctuation (no spaces)"
        )
    return group


def dumps(value: Any, *, what: str, event_id: str) -> str:
    """Compact, strict JSON (no NaN); the error names the event and what failed."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PayloadNotJsonError(f"event {event_id}: {what} is not JSON-serializable: {exc}") from exc


@dataclass(frozen=True, kw_only=True, slots=True)
class OutboxEnvelope:
    """The JSON body every published event carries (see docs/contracts.md)."""

    event_id: uuid.UUID
    event_type: str
    aggregate_type: str
    aggregate_key: str
    occurred_at: datetime
    payload: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)
    #: set on a re-publication by ``saga-outbox outbox replay``: ``{"run_id": ...}``; None on
    #: the original (whose body then has no ``replay`` key, as before replay existed)
    replay: Mapping[str, str] | None = None

    @property
    def is_replay(self) -> bool:
        return self.replay is not None

    @property
    def group_id(self) -> str:
        return message_group_id(self.aggregate_type, self.aggregate_key)

    @property
    def deduplication_id(self) -> str:
        return deduplication_id(self.event_id)

    def to_json(self) -> str:
        eid = str(self.event_id)
        return envelope_json(
            event_id=eid,
            event_type=self.event_type,
            aggregate_type=self.aggregate_type,
            aggregate_key=self.aggregate_key,
            occurred_at=self.occurred_at,
            headers_json=dumps(dict(self.headers), what="headers", event_id=eid),
            payload_json=dumps(self.payload, what="payload", event_id=eid),
            replay_json=None
            if self.replay is None
            else dumps(dict(self.replay), what="replay", event_id=eid),
        )

    @classmethod
    def from_json(cls, body: str | bytes) -> OutboxEnvelope:
        try:
            data = json.loads(body)
            return cls(
                event_id=uuid.UUID(data["event_id"]),
                event_type=data["event_type"],
                aggregate_type=data["aggregate_type"],
                aggregate_key=data["aggregate_key"],
                occurred_at=datetime.fromisoformat(data["occurred_at"]),
                headers=data.get("headers") or {},
                payload=data["payload"],
                replay=data.get("replay"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidEventError(f"not an outbox envelope: {str(body)[:200]!r} ({exc})") from exc


def envelope_json(
    *,
    event_id: str,
    event_type: str,
    aggregate_type: str,
    aggregate_key: str,
    occurred_at: datetime,
    headers_json: str,
    payload_json: str,
    replay_json: str | None = None,
) -> str:
    """The body, with headers and payload given as JSON text (the relay passes the jsonb text
    PostgreSQL returns: no parse and re-dump per row). ``replay_json`` (replays only) adds the
    ``replay`` key last, so an original's body is byte for byte what it was before replay."""
    occurred = occurred_at.astimezone(UTC).isoformat(timespec="microseconds")
    return (
        f'{{"event_id":"{event_id}","event_type":{json.dumps(event_type, ensure_ascii=False)},'
        f'"aggregate_type":{json.dumps(aggregate_type, ensure_ascii=False)},'
        f'"aggregate_key":{json.dumps(aggregate_key, ensure_ascii=False)},'
        f'"occurred_at":"{occurred}","headers":{headers_json},"payload":{payload_json}'
        + ("}" if replay_json is None else f',"replay":{replay_json}}}')
    )


def message_size(body: str, attributes: Mapping[str, Mapping[str, str]]) -> int:
    """Bytes SQS counts against its limit: body plus each attribute's name, type and value."""
    size = len(body.encode("utf-8"))
    for name, attr in attributes.items():
        size += len(name.encode()) + len(attr["DataType"].encode())
        size += len(attr.get("StringValue", "").encode("utf-8"))
    return size


def message_attributes(event_type: str) -> dict[str, dict[str, str]]:
    return {"event_type": {"DataType": "String", "StringValue": event_type}}


def estimated_size(
    *,
    event_id: str,
    event_type: str,
    aggregate_type: str,
    aggregate_key: str,
    payload_json: str,
    headers_json: str,
) -> int:
    """Size of the message the relay will build, computed at enqueue time without building it."""
    skeleton = (
        len(
            '{"event_id":"","event_type":,"aggregate_type":,"aggregate_key":,'
            '"occurred_at":"","headers":,"payload":}'
        )
        + len(event_id)
        + _OCCURRED_AT_WIDTH
    )
    texts = sum(
        len(json.dumps(t, ensure_ascii=False).encode("utf-8"))
        for t in (event_type, aggregate_type, aggregate_key)
    )
    body = skeleton + texts + len(payload_json.encode("utf-8")) + len(headers_json.encode("utf-8"))
    return body + message_size("", message_attributes(event_type))
