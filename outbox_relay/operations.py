"""Operator actions: status, retry of dead rows, retention."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from .db import translate
from .schema import DEFAULT_SCHEMA, check_schema
from .store import oldest_pending_age

__all__ = ["OutboxStatus", "outbox_status", "purge_published", "retry_dead"]


@dataclass(frozen=True, kw_only=True)
class OutboxStatus:
    pending: int
    published: int
    dead: int
    oldest_pending_age_seconds: float
    stalled_groups: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def outbox_status(
    engine: sa.Engine, *, schema: str = DEFAULT_SCHEMA, stalled_limit: int = 20
) -> OutboxStatus:
    """Counts per state, the lag, and the groups whose head is retrying or held by a stale lease."""
    s = check_schema(schema)
    try:
        with engine.connect() as conn:
            counts: dict[str, int] = dict(
                conn.exec_driver_sql(f'SELECT state, count(*) FROM "{s}".outbox GROUP BY state').all()
            )
            age = oldest_pending_age(conn, s)
            stalled = (
                conn.exec_driver_sql(
                    f"""SELECT aggregate_type, aggregate_key, event_id::text, attempts, last_error,
                           available_at, lease_owner, lease_expires_at
                    FROM (SELECT DISTINCT ON (aggregate_type, aggregate_key) *
                          FROM "{s}".outbox WHERE state = 'pending'
                          ORDER BY aggregate_type, aggregate_key, id) AS heads
                    WHERE attempts > 0 OR lease_expires_at < now()
                    ORDER BY available_at LIMIT %(n)s""",
                    {"n": stalled_limit},
                )
                .mappings()
                .all()
            )
    except sa_exc.SQLAlchemyError as exc:
        raise translate(exc, schema=s) from exc
    return OutboxStatus(
        pending=int(counts.get("pending", 0)),
        published=int(counts.get("published", 0)),
        dead=int(counts.get("dead", 0)),
        oldest_pending_age_seconds=age,
        stalled_groups=[
            {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()} for r in stalled
        ],
    )


def retry_dead(
    engine: sa.Engine, *, schema: str = DEFAULT_SCHEMA, event_ids: Sequence[uuid.UUID | str] | None = None
) -> int:
    """Put dead rows back to pending with fresh attempts (all of them when ``event_ids`` is None).

    A revived row rejoins its group's order by id, after rows that were published meanwhile.
    """
    s = check_schema(schema)
    where = "state = 'dead'"
    params: dict[str, Any] = {}
    if event_ids is not None:
        where += " AND event_id = ANY(%(ids)s)"
        params["ids"] = [uuid.UUID(str(e)) for e in event_ids]
    try:
        with engine.begin() as conn:
            return conn.exec_driver_sql(
                f"UPDATE \"{s}\".outbox SET state = 'pending', attempts = 0, available_at = now(), "
                f"lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL WHERE {where}",
                params,
            ).rowcount
    except sa_exc.SQLAlchemyError as exc:
        raise translate(exc, schema=s) from exc


#: how long purge_published keeps a published event's id (without its payload) by default, so
#: a producer retrying a command after retention still finds the id and publishes nothing
DEFAULT_KEEP_EVENT_IDS = timedelta(days=7)
#: the payload of a purged row: enqueue never writes it (payloads are JSON objects), so it marks
#: a row that only keeps its event id
PURGED_PAYLOAD = "null"


def purge_published(
    engine: sa.Engine,
    *,
    schema: str = DEFAULT_SCHEMA,
    older_than: timedelta,
    batch_size: int = 1000,
    archive: bool = False,
    pause_seconds: float = 0.0,
    max_batches: int | None = None,
    keep_event_ids_for: timedelta = DEFAULT_KEEP_EVENT_IDS,
) -> int:
    """Remove the payloads of published rows older than ``older_than`` (copying the full rows to
    ``outbox_archive`` first when ``archive``), and delete the rows once they are older than
    ``keep_event_ids_for`` as well; returns the number of rows purged (payloads removed).

    Until a row is deleted its event id stays in the unique index, so enqueuing the same event
    id again (a producer retrying after retention) is still a no-op rather than a second
    publication. ``keep_event_ids_for=timedelta(0)`` deletes at once, forgetting the id.

    Works in short transactions of ``batch_size`` rows with SKIP LOCKED, so it never holds long
    locks nor waits on a relay.
    """
    s = check_schema(schema)

    def pick(extra: str) -> str:
        return (
            f"SELECT id FROM \"{s}\".outbox WHERE state = 'published' AND published_at < "
            f"now() - make_interval(secs => %(age)s){extra} ORDER BY id LIMIT %(n)s FOR UPDATE SKIP LOCKED"
        )

    fresh = f" AND payload <> '{PURGED_PAYLOAD}'::jsonb"
    strip = (
        f"UPDATE \"{s}\".outbox SET payload = '{PURGED_PAYLOAD}'::jsonb, headers = '{{}}'::jsonb "
        f"WHERE id IN ({pick(fresh)})"
    )
    if archive:
        strip = (
            f'WITH moved AS (INSERT INTO "{s}".outbox_archive SELECT * FROM "{s}".outbox '
            f"WHERE id IN ({pick(fresh)}) RETURNING id) "
            f"UPDATE \"{s}\".outbox SET payload = '{PURGED_PAYLOAD}'::jsonb, headers = '{{}}'::jsonb "
            "WHERE id IN (SELECT id FROM moved)"
        )
    # rows past both ages: stripped (and archived) above, in this run or an earlier one
    forget = f'DELETE FROM "{s}".outbox WHERE id IN ({pick(f" AND payload = {PURGED_PAYLOAD!r}::jsonb")})'
    age = older_than.total_seconds()
    total = _in_batches(engine, s, strip, {"age": age, "n": batch_size}, pause_seconds, max_batches)
    _in_batches(
        engine,
        s,
        forget,
        {"age": max(age, keep_event_ids_for.total_seconds()), "n": batch_size},
        pause_seconds,
        max_batches,
    )
    return total


def _in_batches(
    engine: sa.Engine,
    schema: str,
    sql: str,
    params: dict[str, Any],
    pause_seconds: float,
    max_batches: int | None,
) -> int:
    total = 0
    batches = 0
    while max_batches is None or batches < max_batches:
        try:
            with engine.begin() as conn:
                n = conn.exec_driver_sql(sql, params).rowcount
        except sa_exc.SQLAlchemyError as exc:
            raise translate(exc, schema=schema) from exc
        total += n
        batches += 1
        if n < params["n"]:
            break
        if pause_seconds:
            time.sleep(pause_seconds)
    return total
