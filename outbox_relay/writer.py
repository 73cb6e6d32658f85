"""Enqueue events inside the caller's own transaction.

The writer never commits, never begins, never rolls back: the outbox row is part of whatever
transaction the caller's Session, Connection or psycopg connection is in, so the business rows
and the event commit together or not at all. :func:`enqueue_async` does the same for psycopg
``AsyncConnection`` and SQLAlchemy ``AsyncConnection``/``AsyncSession``.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from .destinations import Destination, check_destinations
from .envelope import SQS_MAX_MESSAGE_BYTES, dumps, estimated_size, message_group_id
from .exceptions import (
    AggregateTypeSeparatorError,
    EventIdConflictError,
    InvalidEventError,
    PayloadTooLargeError,
    UnsupportedTargetError,
)
from .schema import DEFAULT_SCHEMA, check_schema, notify_channel
from .tracing import ambient_trace_headers, check_trace_headers, has_trace_header
from .validation import check_event_id, check_text, jsonb_text_size

__all__ = ["enqueue", "enqueue_async", "enqueue_many", "notify_channel"]

_SQL = (
    # one row per destination (docs/destinations.md); the count tells enqueue whether any row
    # was already there
    "WITH ins AS ("
    'INSERT INTO "{schema}".outbox (event_id, aggregate_type, aggregate_key, event_type, payload,'
    " headers, available_at, destination)"
    " SELECT %(event_id)s, %(aggregate_type)s, %(aggregate_key)s, %(event_type)s, %(payload)s::jsonb,"
    " %(headers)s::jsonb, coalesce(%(available_at)s::timestamptz, now()), d.destination"
    # The group lock is taken in a subquery that OFFSET 0 keeps from being flattened, so it is
    # granted before the outer row (and its identity default) is formed: the id is drawn while
    # holding the lock, and the lock is held until the caller's COMMIT or ROLLBACK. Writers of
    # one aggregate therefore draw ids in the order they commit. The NOTIFY rides in the same
    # round trip; PostgreSQL delivers it only on COMMIT. The lock is the aggregate's, not the
    # (destination, aggregate)'s: one lock orders the rows of every destination at once.
    " FROM (SELECT pg_advisory_xact_lock(hashtextextended(%(lock_key)s, 0)),"
    " pg_notify(%(channel)s, '') OFFSET 0) AS wake"
    " CROSS JOIN unnest(%(destinations)s::text[]) WITH ORDINALITY AS d(destination, n)"
    " ORDER BY d.n"
    " ON CONFLICT (event_id, destination) DO NOTHING"
    " RETURNING id"
    ") SELECT count(*) FROM ins"
)
# Only when the event id was already there: is it the same event (a retry) or another one?
# A row purged by retention keeps only its id (payload 'null', which enqueue never writes): it
# cannot be compared, and its event was published, so a re-enqueue is the retry it was kept for.
_SAME_EVENT = (
    "SELECT bool_and(payload = 'null'::jsonb OR (aggregate_type = %(aggregate_type)s"
    " AND aggregate_key = %(aggregate_key)s AND event_type = %(event_type)s"
    " AND payload = %(payload)s::jsonb"
    # a retry runs under another trace (a new request, a Lambda retry): not another event
    " AND headers - ARRAY['X-Amzn-Trace-Id', 'traceparent'] ="
    " %(headers)s::jsonb - ARRAY['X-Amzn-Trace-Id', 'traceparent']))"
    ' FROM "{schema}".outbox WHERE event_id = %(event_id)s'
)


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
    event_id: uuid.UUID | str | None = None,
    available_at: datetime | None = None,
    schema: str = DEFAULT_SCHEMA,
    max_message_bytes: int = SQS_MAX_MESSAGE_BYTES,
    destinations: Sequence[Destination] | None = None,
) -> uuid.UUID:
    """Add an event to the outbox in the caller's transaction and return its event id.

    ``target`` is a SQLAlchemy ``Session``, a SQLAlchemy ``Connection`` or a psycopg 3
    ``Connection`` inside a transaction (an autocommit connection is refused: the row would
    survive your rollback; async connections go to :func:`enqueue_async`). Bad input is refused
    before any SQL runs, with a named :class:`InvalidEventError` subclass, so the caller's
    transaction stays usable. Enqueuing an ``event_id`` that already exists with the same event
    is a no-op (a retried command with a deterministic event id does not publish twice); with a
    different event it raises :class:`EventIdConflictError`.

    Trace: unless ``headers`` name a trace context (``traceparent`` or ``X-Amzn-Trace-Id``,
    checked: :class:`InvalidTraceHeaderError`), the caller's ambient one is added
    (:func:`outbox_relay.tracing.ambient_trace_headers`); a retry under another trace is still
    the same event.

    Order: events of one aggregate are published in the order their transactions commit, which
    is also their id order. To make it so, enqueue takes a transaction-scoped advisory lock on
    the aggregate (``pg_advisory_xact_lock``) before the row's id is drawn and holds it until
    your transaction ends: a second transaction enqueuing for the same aggregate waits for the
    first to commit or roll back. Two consequences: keep transactions that enqueue short, and
    when one transaction enqueues for several aggregates, enqueue them in a fixed order (e.g.
    sorted by ``(aggregate_type, aggregate_key)``; :func:`enqueue_many` does it for you), or two
    transactions taking them in opposite orders deadlock (PostgreSQL aborts one with SQLSTATE
    40P01, which the caller retries).
    """
    conn = _sync_connection(target)
    eid, sql, params = _prepare(
        aggregate_type=aggregate_type,
        aggregate_key=aggregate_key,
        event_type=event_type,
        payload=payload,
        headers=headers,
        event_id=event_id,
        available_at=available_at,
        schema=schema,
        max_message_bytes=max_message_bytes,
        destinations=destinations,
    )
    if _partly_there(_fetch(conn, sql, params), params):
        _check_same_event(_fetch(conn, _SAME_EVENT.format(schema=schema), params), params)
    return eid


async def enqueue_async(
    target: Any,
    *,
    aggregate_type: str,
    aggregate_key: str,
    event_type: str,
    payload: Mapping[str, Any],
    headers: Mapping[str, str] | None = None,
    event_id: uuid.UUID | str | None = None,
    available_at: datetime | None = None,
    schema: str = DEFAULT_SCHEMA,
    max_message_bytes: int = SQS_MAX_MESSAGE_BYTES,
    destinations: Sequence[Destination] | None = None,
) -> uuid.UUID:
    """:func:`enqueue` for a psycopg ``AsyncConnection`` or a SQLAlchemy ``AsyncConnection`` /
    ``AsyncSession``: the same checks, the same SQL, the same order and deadlock rules."""
    eid, sql, params = _prepare(
        aggregate_type=aggregate_type,
        aggregate_key=aggregate_key,
        event_type=event_type,
        payload=payload,
        headers=headers,
        event_id=event_id,
        available_at=available_at,
        schema=schema,
        max_message_bytes=max_message_bytes,
        destinations=destinations,
    )
    fetch = await _async_fetcher(target)
    if _partly_there(await fetch(sql, params), params):
        _check_same_event(await fetch(_SAME_EVENT.format(schema=schema), params), params)
    return eid


def enqueue_many(
    target: Any,
    events: Sequence[Mapping[str, Any]],
    *,
    schema: str = DEFAULT_SCHEMA,
    max_message_bytes: int = SQS_MAX_MESSAGE_BYTES,
) -> list[uuid.UUID]:
    """Enqueue several events (each a mapping of :func:`enqueue`'s keyword arguments) in the
    caller's transaction, in the given order; return their event ids.

    Every event is checked before any SQL runs. The group locks of all their aggregates are then
    taken in one sorted order, whatever the order of ``events``: two transactions enqueuing for
    the same aggregates cannot deadlock on each other (the deadlock rule of :func:`enqueue`).
    """
    conn = _sync_connection(target)
    prepared = [
        _prepare(
            aggregate_type=e["aggregate_type"],
            aggregate_key=e["aggregate_key"],
            event_type=e["event_type"],
            payload=e["payload"],
            headers=e.get("headers"),
            event_id=e.get("event_id"),
            available_at=e.get("available_at"),
            schema=schema,
            max_message_bytes=max_message_bytes,
            destinations=e.get("destinations"),
        )
        for e in events
    ]
    keys = sorted({params["lock_key"] for _, _, params in prepared})
    if keys:
        # unnest yields the array in order, and each lock is taken as its row is produced
        _fetch(
            conn,
            "SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0))) FROM unnest(%(keys)s::text[]) AS k",
            {"keys": keys},
        )
    for _, sql, params in prepared:
        if _partly_there(_fetch(conn, sql, params), params):  # its lock is already ours (re-entrant)
            _check_same_event(_fetch(conn, _SAME_EVENT.format(schema=schema), params), params)
    return [eid for eid, _, _ in prepared]


def _prepare(
    *,
    aggregate_type: str,
    aggregate_key: str,
    event_type: str,
    payload: Mapping[str, Any],
    headers: Mapping[str, str] | None,
    event_id: uuid.UUID | str | None,
    available_at: datetime | None,
    schema: str,
    max_message_bytes: int,
    destinations: Sequence[Destination] | None = None,
) -> tuple[uuid.UUID, str, dict[str, Any]]:
    """Every check, then the SQL and its parameters; raises before anything touches the database."""
    check_schema(schema)
    eid = check_event_id(event_id) if event_id is not None else uuid.uuid4()
    sid = str(eid)
    for name, value in (
        ("aggregate_type", aggregate_type),
        ("aggregate_key", aggregate_key),
        ("event_type", event_type),
    ):
        if not isinstance(value, str) or not value:
            raise InvalidEventError(f"event {sid}: {name} must be a non-empty string, got {value!r}")
        check_text(value, what=name, event_id=sid, sqs_attribute=name == "event_type")
    if ":" in aggregate_type:
        raise AggregateTypeSeparatorError(
            f"event {sid}: aggregate_type {aggregate_type!r} contains ':', the separator of the "
            "SQS MessageGroupId 'type:key'; use another character (the key may contain ':')"
        )
    message_group_id(aggregate_type, aggregate_key)
    if not isinstance(payload, Mapping):
        raise InvalidEventError(f"event {sid}: payload must be a JSON object, got {type(payload).__name__}")
    header_map = dict(headers or {})
    if has_trace_header(header_map):
        check_trace_headers(header_map, event_id=sid)
    else:
        header_map.update(ambient_trace_headers())
    # walk first: it refuses what dumps would choke on (depth, surrogates) with a named error
    payload_bytes = jsonb_text_size(payload, what="payload", event_id=sid)
    headers_bytes = jsonb_text_size(header_map, what="headers", event_id=sid)
    payload_json = dumps(payload, what="payload", event_id=sid)
    headers_json = dumps(header_map, what="headers", event_id=sid)
    # the relay sends the jsonb text PostgreSQL prints, measured above without building it
    size = (
        estimated_size(
            event_id=sid,
            event_type=event_type,
            aggregate_type=aggregate_type,
            aggregate_key=aggregate_key,
            payload_json="",
            headers_json="",
        )
        + payload_bytes
        + headers_bytes
    )
    dests = check_destinations(destinations, event_id=sid)
    if size > max_message_bytes:
        raise PayloadTooLargeError(
            f"event {sid} ({event_type}): the SQS message would be {size:,} bytes, over the "
            f"{max_message_bytes:,}-byte limit; store the payload elsewhere (e.g. S3) and enqueue a "
            "reference to it (claim-check pattern)",
            event_id=sid,
            size=size,
            limit=max_message_bytes,
        )
    for dest in dests:
        if size > dest.max_message_bytes:
            raise PayloadTooLargeError(
                f"event {sid} ({event_type}): the message would be {size:,} bytes, over the "
                f"{dest.max_message_bytes:,}-byte limit of destination {dest.name!r} ({dest.kind}); "
                "store the payload elsewhere (e.g. S3) and enqueue a reference to it (claim-check)",
                event_id=sid,
                size=size,
                limit=dest.max_message_bytes,
            )
    params = {
        "event_id": eid,
        "aggregate_type": aggregate_type,
        "aggregate_key": aggregate_key,
        "event_type": event_type,
        "payload": payload_json,
        "headers": headers_json,
        "available_at": available_at,
        "channel": notify_channel(schema),
        "lock_key": group_lock_key(schema, aggregate_type, aggregate_key),
        "destinations": [d.name for d in dests],
    }
    return eid, _SQL.format(schema=schema), params


def _partly_there(inserted: Any, params: dict[str, Any]) -> bool:
    """Whether some row of the event was already in the outbox (the insert skipped it)."""
    return int(inserted[0]) < len(params["destinations"])


def _check_same_event(row: Any, params: dict[str, Any]) -> None:
    if row is not None and row[0] is False:
        raise EventIdConflictError(
            f"event {params['event_id']} is already in the outbox with a different event "
            f"(type, aggregate, payload or headers differ from {params['event_type']} "
            f"{params['aggregate_type']}:{params['aggregate_key']}); a retry must enqueue the same "
            "event, a new event needs a new event id"
        )


def _sync_connection(target: Any) -> Any:
    """The connection to execute on, after refusing what cannot join the caller's transaction."""
    import psycopg

    if isinstance(target, psycopg.AsyncConnection) or type(target).__name__ in (
        "AsyncSession",
        "AsyncConnection",
    ):
        raise UnsupportedTargetError(
            f"enqueue() got an async {type(target).__name__}: use `await enqueue_async(...)` instead"
        )
    # A Session exists only once its caller imported the ORM: the writer never pays for it.
    orm = sys.modules.get("sqlalchemy.orm")
    if orm is not None and isinstance(target, orm.Session):
        target = target.connection()
    if isinstance(target, sa.Connection):
        dbapi = target.connection.dbapi_connection
        if target.get_execution_options().get("isolation_level") == "AUTOCOMMIT" or getattr(
            dbapi, "autocommit", False
        ):
            raise _autocommit(target)
        return target
    if isinstance(target, psycopg.Connection):
        if target.autocommit:
            raise _autocommit(target)
        return target
    raise UnsupportedTargetError(
        "enqueue() needs a SQLAlchemy Session or Connection, or a psycopg 3 Connection; "
        f"got {type(target).__name__}"
    )


def _autocommit(target: Any) -> UnsupportedTargetError:
    return UnsupportedTargetError(
        f"enqueue() got an autocommit {type(target).__name__}: the outbox row would commit on its "
        "own and survive your rollback; enqueue inside the transaction of your business writes"
    )


def _fetch(conn: Any, sql: str, params: dict[str, Any]) -> Any:
    # One SQL text serves both: SQLAlchemy's exec_driver_sql passes it to psycopg untouched.
    if isinstance(conn, sa.Connection):
        return conn.exec_driver_sql(sql, params).first()
    return conn.execute(sql, params).fetchone()


async def _async_fetcher(target: Any) -> Any:
    import psycopg
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

    if isinstance(target, AsyncSession):
        target = await target.connection()
    if isinstance(target, AsyncConnection):
        raw = await target.get_raw_connection()
        sync = target.sync_connection
        options = sync.get_execution_options() if sync is not None else {}
        if options.get("isolation_level") == "AUTOCOMMIT" or getattr(
            raw.driver_connection, "autocommit", False
        ):
            raise _autocommit(target)

        async def fetch_sa(sql: str, params: dict[str, Any]) -> Any:
            return (await target.exec_driver_sql(sql, params)).first()

        return fetch_sa
    if isinstance(target, psycopg.AsyncConnection):
        if target.autocommit:
            raise _autocommit(target)

        async def fetch_pg(sql: str, params: dict[str, Any]) -> Any:
            return await (await target.execute(sql, params)).fetchone()

        return fetch_pg
    raise UnsupportedTargetError(
        "enqueue_async() needs a psycopg AsyncConnection or a SQLAlchemy AsyncConnection/AsyncSession; "
        f"got {type(target).__name__} (use enqueue() for synchronous connections)"
    )
