"""The reconciler's read of the outbox: events published in a time window, live and archived,
each with the exact body the relay sent.

The body is built as the relay builds it (``envelope_json`` over the jsonb *text* PostgreSQL
prints, ``occurred_at`` = ``created_at``), so a start repeated for an execution that is still
open carries the same input and Step Functions returns that execution instead of refusing it.
Read-only, one short transaction, no locks: safe beside a running relay and other reconcilers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from outbox_relay.db import translate
from outbox_relay.envelope import envelope_json
from outbox_relay.schema import check_schema

__all__ = ["PublishedEvent", "published_events"]

#: rows per page: a day of events is read without holding them all in memory at once
_PAGE = 1_000


@dataclass(frozen=True, slots=True)
class PublishedEvent:
    event_id: uuid.UUID
    event_type: str
    aggregate_type: str
    aggregate_key: str
    published_at: datetime
    archived: bool
    body: str


def _query(schema: str) -> str:
    s = f'"{check_schema(schema)}"'
    columns = (
        "event_id, event_type, aggregate_type, aggregate_key, created_at, published_at, "
        "payload::text AS payload, headers::text AS headers"
    )
    # Keyset pages on (published_at, event_id): each page is its own short read, so no
    # transaction stays open while the reconciler talks to Step Functions.
    # the SQS rows only: the dispatcher starts executions from them (docs/destinations.md)
    where = (
        "destination = 'sqs' AND published_at >= :since AND published_at < :until "
        "AND event_type = ANY(:types) AND (published_at, event_id) > (:after_at, :after_id)"
    )
    # outbox_archive holds only rows purge moved there, all of them published.
    return (
        f"SELECT * FROM (SELECT {columns}, false AS archived FROM {s}.outbox "
        f"WHERE state = 'published' AND {where} "
        f"UNION ALL SELECT {columns}, true AS archived FROM {s}.outbox_archive WHERE {where}) AS e "
        "ORDER BY published_at, event_id LIMIT :page"
    )


def published_events(
    engine: sa.Engine,
    *,
    schema: str,
    since: datetime,
    until: datetime,
    event_types: Sequence[str],
    page_size: int = _PAGE,
) -> Iterator[PublishedEvent]:
    """Events of ``event_types`` published in ``[since, until)``, oldest first."""
    if not event_types:
        return
    query = sa.text(_query(schema))
    params = {"since": since, "until": until, "types": list(event_types), "page": page_size}
    after_at, after_id = since - timedelta(microseconds=1), uuid.UUID(int=0)
    while True:
        try:
            with engine.connect() as conn:
                rows = conn.execute(query, {**params, "after_at": after_at, "after_id": after_id}).all()
        except sa_exc.SQLAlchemyError as exc:
            raise translate(exc, schema=schema) from exc
        for r in rows:
            yield PublishedEvent(
                event_id=r.event_id,
                event_type=r.event_type,
                aggregate_type=r.aggregate_type,
                aggregate_key=r.aggregate_key,
                published_at=r.published_at,
                archived=r.archived,
                body=envelope_json(
                    event_id=str(r.event_id),
                    event_type=r.event_type,
                    aggregate_type=r.aggregate_type,
                    aggregate_key=r.aggregate_key,
                    occurred_at=r.created_at,
                    headers_json=r.headers or "{}",
                    payload_json=r.payload,
                ),
            )
        if len(rows) < page_size:
            return
        after_at, after_id = rows[-1].published_at, rows[-1].event_id
