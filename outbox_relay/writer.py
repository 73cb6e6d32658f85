"""Enqueue events inside the caller's own transaction.

The writer never commits, never begins, never rolls back: the outbox row is part of whatever
transaction the caller's Session, Connection or psycopg connection is in, so the business rows
and the event commit together or not at all.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm

from .envelope import SQS_MAX_MESSAGE_BYTES, dumps, estimated_size, message_group_id
from .exceptions import AggregateTypeSeparatorError, InvalidEventError, PayloadTooLargeError
from .schema import DEFAULT_SCHEMA, check_schema

__all__ = ["enqueue", "notify_channel"]

_SQL = (
    'INSERT INTO "{schema}".outbox (event_id, aggregate_type, aggregate_key, event_type, payload,'
    " headers, available_at)"
    " SELECT %(event_id)s, %(aggregate_type)s, %(aggregate_key)s, %(event_type)s, %(payload)s::jsonb,"
    " %(headers)s::jsonb, coalesce(%(available_at)s::timestamptz, now())"
    # The group lock is taken in a subquery that OFFSET 0 keeps from being flattened, so it is
    # granted before the outer row (and its identity default) is formed: the id is drawn while
    # holding the lock, and the lock is held until the caller's COMMIT or ROLLBACK. Writers of
    # one aggregate therefore draw ids in the order they commit. The NOTIFY rides in the same
    # round trip; PostgreSQL delivers it only on COMMIT.
    " FROM (SELECT pg_advisory_xact_lock(hashtextextended(%(lock_key)s, 0)),"
    " pg_notify(%(channel)s, '') OFFSET 0) AS wake"
    " ON CONFLICT (event_id) DO NOTHING"
)


def notify_channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel the relay of ``schema`` wakes on."""
    return f"saga_outbox__{schema}"


def group_lock_key(schema: str, aggregate_type: str, aggregate_key: str) -> str:
    """The text whose 64-bit hash is the advisory lock serializing writers of one aggregate.
    Unambiguous because neither a schema name nor an aggregate type may contain ':'."""
    return f"saga_outbox:{schema}:{aggregate_type}:{aggregate_key}"


def enqueue(
    target: Any,
    *,
    aggregate_type: str,
    aggregate_key: str,
    event_type: str,
    payload: Mapping[str, Any],
    headers: Mapping[str, str] | None = None,
    event_id: uuid.UUID | None = None,
    available_at: datetime | None = None,
    schema: str = DEFAULT_SCHEMA,
    max_message_bytes: int = SQS_MAX_MESSAGE_BYTES,
) -> uuid.UUID:
    """Add an event to the outbox in the caller's transaction and return its event id.

    ``target`` is a SQLAlchemy ``Session``, a SQLAlchemy ``Connection`` or a psycopg 3
    ``Connection``. Bad input is refused before any SQL runs, so the caller's transaction stays
    usable. Enqueuing an ``event_id`` that already exists is a no-op: a retried command with a
    deterministic event id does not publish twice.

    Order: events of one aggregate are published in the order their transactions commit, which
    is also their id order. To make it so, enqueue takes a transaction-scoped advisory lock on
    the aggregate (``pg_advisory_xact_lock``) before the row's id is drawn and holds it until
    your transaction ends: a second transaction enqueuing for the same aggregate waits for the
    first to commit or roll back. Two consequences: keep transactions that enqueue short, and
    when one transaction enqueues for several aggregates, enqueue them in a fixed order (e.g.
    sorted by ``(aggregate_type, aggregate_key)``), or two transactions taking them in opposite
    orders deadlock (PostgreSQL aborts one with SQLSTATE 40P01, which the caller retries).
    """
    event_id = event_id or uuid.uuid4()
    eid = str(event_id)
    for name, value in (
        ("aggregate_type", aggregate_type),
        ("aggregate_key", aggregate_key),
        ("event_type", event_type),
    ):
        if not isinstance(value, str) or not value:
            raise InvalidEventError(f"event {eid}: {name} must be a non-empty string, got {value!r}")
    if ":" in aggregate_type:
        raise AggregateTypeSeparatorError(
            f"event {eid}: aggregate_type {aggregate_type!r} contains ':', the separator of the "
            "SQS MessageGroupId 'type:key'; use another character (the key may contain ':')"
        )
    message_group_id(aggregate_type, aggregate_key)
    if not isinstance(payload, Mapping):
        raise InvalidEventError(f"event {eid}: payload must be a JSON object, got {type(payload).__name__}")
    payload_json = dumps(payload, what="payload", event_id=eid)
    headers_json = dumps(dict(headers or {}), what="headers", event_id=eid)
    size = estimated_size(  # the relay sends jsonb's text form: ", " and ": " separators
        event_id=eid,
        event_type=event_type,
        aggregate_type=aggregate_type,
        aggregate_key=aggregate_key,
        payload_json=json.dumps(payload, ensure_ascii=False),
        headers_json=json.dumps(dict(headers or {}), ensure_ascii=False),
    )
    if size > max_message_bytes:
        raise PayloadTooLargeError(
            f"event {eid} ({event_type}): the SQS message would be {size:,} bytes, over the "
            f"{max_message_bytes:,}-byte limit; store the payload elsewhere (e.g. S3) and enqueue a "
            "reference to it (claim-check pattern)",
            event_id=eid,
            size=size,
            limit=max_message_bytes,
        )
    params = {
        "event_id": event_id,
        "aggregate_type": aggregate_type,
        "aggregate_key": aggregate_key,
        "event_type": event_type,
        "payload": payload_json,
        "headers": headers_json,
        "available_at": available_at,
        "channel": notify_channel(schema),
        "lock_key": group_lock_key(schema, aggregate_type, aggregate_key),
    }
    _execute(target, _SQL.format(schema=check_schema(schema)), params)
    return event_id


def _execute(target: Any, sql: str, params: dict[str, Any]) -> None:
    # One SQL text serves all three: SQLAlchemy's exec_driver_sql passes it to psycopg untouched.
    if isinstance(target, sa.orm.Session):
        target.connection().exec_driver_sql(sql, params)
    elif isinstance(target, sa.Connection):
        target.exec_driver_sql(sql, params)
    elif hasattr(target, "cursor") and hasattr(target, "execute"):
        target.execute(sql, params)
    else:
        raise TypeError(
            "enqueue() needs a SQLAlchemy Session or Connection, or a psycopg 3 Connection; "
            f"got {type(target).__name__}"
        )
