"""SQL of the relay: claim group heads in commit order, then mark what was sent (fenced).

Per-aggregate order needs no commit horizon: the writer serializes the enqueues of one
aggregate with a transaction-scoped advisory lock taken before the id is drawn (writer.py), so
among one aggregate's rows, a larger id always belongs to a transaction that committed later,
and a row the relay can see has every smaller id of its aggregate already visible (the writer's
lock is released only after its commit became visible). The ``txid`` column is kept, unused,
for readers and Alembic models that know it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ._claim_sql import CLAIM
from .schema import DEFAULT_DESTINATION

_CANDIDATES = """
SELECT id, aggregate_type, aggregate_key,
       available_at <= now() AS due,
       coalesce(lease_expires_at > now(), false) AS leased
FROM "{s}".outbox
WHERE state = 'pending' AND destination = %(destination)s{more}
ORDER BY id
LIMIT %(scan)s
"""
# Past a window crowded by a few busy groups: the next rows of *other* groups, so one aggregate
# with a large backlog cannot hide every other group from the relay.
_BEYOND = """
  AND id > %(after)s
  AND (aggregate_type, aggregate_key) NOT IN (
      SELECT * FROM unnest(%(seen_types)s::text[], %(seen_keys)s::text[]))"""
# Lock the chosen rows (heads and the rows behind them) without waiting; a group keeps only its
# rows up to the first one someone else holds (see keep_locked_prefix). SKIP LOCKED is safe here
# because it is applied to a chosen, contiguous set and cut at the first gap, never used to
# slide past a locked head. Without it, the lease UPDATE would wait on a locked follower and
# freeze every group of the claim.
_LOCK_ROWS = """
SELECT id FROM "{s}".outbox
WHERE id = ANY(%(ids)s) AND state = 'pending'
  AND (lease_expires_at IS NULL OR lease_expires_at <= now()) AND available_at <= now()
FOR UPDATE SKIP LOCKED
"""
# The lease starts at clock_timestamp(), when the rows are leased: now() is the start of the
# claim transaction, which may have waited on a lock for longer than the lease itself.
_LEASE = """
UPDATE "{s}".outbox AS o
SET lease_owner = %(owner)s, lease_token = %(token)s,
    lease_expires_at = clock_timestamp() + make_interval(secs => %(lease)s),
    send_count = o.send_count + 1,
    first_sent_at = coalesce(o.first_sent_at, now())
FROM (SELECT id, first_sent_at FROM "{s}".outbox WHERE id = ANY(%(ids)s)) AS prev
WHERE o.id = prev.id AND o.state = 'pending'
RETURNING o.id, o.event_id, o.aggregate_type, o.aggregate_key, o.event_type, o.payload::text,
          o.headers::text, o.created_at, o.attempts, prev.first_sent_at, clock_timestamp() AS claimed_at
"""
_MARK_PUBLISHED = """
UPDATE "{s}".outbox
SET state = 'published', published_at = now(), last_error = NULL,
    lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
WHERE id = ANY(%(ids)s) AND lease_token = %(token)s AND state = 'pending'
"""
# Rows re-sent after the dedup window. A re-send SQS accepts opens a new window, so
# first_sent_at moves to it: the row is counted once per real duplicate, not on every claim.
_COUNT_LATE = """
UPDATE "{s}".outbox AS o SET first_sent_at = l.sent_at
FROM unnest(%(ids)s::bigint[], %(sent_at)s::timestamptz[]) AS l(id, sent_at)
WHERE o.id = l.id AND o.lease_token = %(token)s
RETURNING o.event_id, l.sent_at AS first_sent_at
"""
# A row SQS certainly did not accept (refused entry, throttled, not tried) gets back the
# first_sent_at it had before this claim: only a send SQS may have accepted starts its window.
_MARK_FAILED = """
UPDATE "{s}".outbox AS o
SET attempts = o.attempts + f.spend,
    first_sent_at = CASE WHEN f.unsent THEN f.prev_first ELSE o.first_sent_at END,
    last_error = coalesce(f.error, o.last_error),
    available_at = now() + make_interval(secs => f.delay),
    state = CASE WHEN f.dead OR o.attempts + f.spend >= %(max_attempts)s THEN 'dead' ELSE 'pending' END,
    lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
FROM unnest(%(ids)s::bigint[], %(errors)s::text[], %(delays)s::float8[], %(spend)s::int[],
            %(dead)s::bool[], %(unsent)s::bool[], %(prev_first)s::timestamptz[])
     AS f(id, error, delay, spend, dead, unsent, prev_first)
WHERE o.id = f.id AND o.lease_token = %(token)s AND o.state = 'pending'
RETURNING o.id, o.event_id, o.state, o.last_error
"""


@dataclass(frozen=True, slots=True)
class ClaimedRow:
    id: int
    event_id: Any
    aggregate_type: str
    aggregate_key: str
    event_type: str
    payload: str  # jsonb as PostgreSQL prints it: spliced into the body, never parsed
    headers: str
    created_at: datetime
    attempts: int
    first_sent_at: datetime | None
    claimed_at: datetime


@dataclass(frozen=True, slots=True)
class Release:
    """What to do with a row that was not published."""

    row_id: int
    error: str | None
    delay_seconds: float
    spend_attempt: bool
    dead: bool = False
    #: SQS may have accepted it (a timeout after the request went out, a 5xx, a publisher
    #: bug): keep first_sent_at; False when SQS certainly did not (refused, throttled, not tried)
    maybe_sent: bool = True


def select_claimable(rows: list[Any], *, claim_size: int, rows_per_group: int) -> tuple[list[int], list[int]]:
    """From candidates in id order, choose (heads, all ids) to claim.

    A group is claimable only if its head is due and not leased, and none of its rows is leased
    (a stale lease of a stalled relay); behind the head we take consecutive due rows, so a
    group's claimed rows stay contiguous and none is sent before its ``available_at``.
    """
    groups: dict[tuple[str, str], list[Any]] = {}
    for row in rows:
        groups.setdefault((row.aggregate_type, row.aggregate_key), []).append(row)
    heads: list[int] = []
    ids: list[int] = []
    for members in groups.values():  # dicts keep insertion order: groups by head id
        if len(ids) >= claim_size:
            break
        head = members[0]
        if not head.due or any(m.leased for m in members):
            continue
        heads.append(head.id)
        for member in members[:rows_per_group]:
            if not member.due or len(ids) >= claim_size:
                break  # a row scheduled for later holds back the rows behind it
            ids.append(member.id)
    return heads, ids


def keep_locked_prefix(candidates: list[Any], ids: list[int], locked: set[int]) -> list[int]:
    """Of each group's chosen rows (in id order), keep those before the first row we could not
    lock: a group whose head is held by someone else is skipped, one whose follower is held is
    cut there, so what we send of a group is always a gap-free prefix."""
    chosen = set(ids)
    cut: set[tuple[str, str]] = set()
    kept: list[int] = []
    for c in candidates:  # id order
        if c.id not in chosen:
            continue
        group = (c.aggregate_type, c.aggregate_key)
        if group in cut:
            continue
        if c.id in locked:
            kept.append(c.id)
        else:
            cut.add(group)
    return kept


class OutboxStore:
    """``prepared``: server-side prepared statements from the first execution (False: never,
    for connections behind RDS Proxy, where they pin the session). ``single_statement``: claim
    in one CTE statement (False: the stepwise claim, kept to measure against)."""

    def __init__(
        self, engine: sa.Engine, *, schema: str, prepared: bool = True, single_statement: bool = True
    ) -> None:
        self.engine = engine
        self.schema = schema
        self.prepared = prepared
        self.single_statement = single_statement
        # One-statement work runs in autocommit: no BEGIN and COMMIT round trips around it.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._claim = CLAIM.format(s=schema)
        self._candidates = _CANDIDATES.format(s=schema, more="")
        self._beyond = _CANDIDATES.format(s=schema, more=_BEYOND)
        self._lock_rows = _LOCK_ROWS.format(s=schema)
        self._lease = _LEASE.format(s=schema)
        self._mark_published = _MARK_PUBLISHED.format(s=schema)
        self._mark_failed = _MARK_FAILED.format(s=schema)
        self._count_late = _COUNT_LATE.format(s=schema)

    @contextmanager
    def _connection(self, engine: sa.Engine) -> Iterator[sa.Connection]:
        """A pooled connection with psycopg's prepare threshold set for our statements and
        restored after (the engine may be the application's own)."""
        with engine.connect() as conn:
            raw = getattr(conn.connection, "driver_connection", None)
            before = getattr(raw, "prepare_threshold", None)
            if raw is not None and hasattr(raw, "prepare_threshold"):
                raw.prepare_threshold = 0 if self.prepared else None
            try:
                yield conn
            finally:
                if raw is not None and hasattr(raw, "prepare_threshold"):
                    raw.prepare_threshold = before

    def claim(
        self,
        *,
        owner: str,
        claim_size: int,
        rows_per_group: int,
        lease_seconds: float,
        scan: int,
        destination: str = DEFAULT_DESTINATION,
    ) -> tuple[int, list[ClaimedRow]]:
        if not self.single_statement:
            return self._claim_stepwise(
                owner=owner,
                claim_size=claim_size,
                rows_per_group=rows_per_group,
                lease_seconds=lease_seconds,
                scan=scan,
                destination=destination,
            )
        params = {
            "destination": destination,
            "owner": owner,
            "claim": claim_size,
            "rpg": rows_per_group,
            "lease": lease_seconds,
            "scan": scan,
        }
        with self._connection(self._autocommit) as conn:
            rows = sorted(conn.exec_driver_sql(self._claim, params).all(), key=lambda r: r[0])
        if not rows:
            return 0, []
        return int(rows[0][-1]), [ClaimedRow(*r[:-1]) for r in rows]

    def _claim_stepwise(
        self,
        *,
        owner: str,
        claim_size: int,
        rows_per_group: int,
        lease_seconds: float,
        scan: int,
        destination: str,
    ) -> tuple[int, list[ClaimedRow]]:
        with self._connection(self.engine) as conn, conn.begin():
            candidates = list(
                conn.exec_driver_sql(self._candidates, {"scan": scan, "destination": destination}).all()
            )
            if not candidates:
                return 0, []
            heads, ids = select_claimable(candidates, claim_size=claim_size, rows_per_group=rows_per_group)
            if len(candidates) == scan and len(ids) < claim_size:
                # pairs, not "type:key" strings: the joined form is ambiguous for legacy rows
                seen = sorted({(c.aggregate_type, c.aggregate_key) for c in candidates})
                candidates += conn.exec_driver_sql(
                    self._beyond,
                    {
                        "scan": scan,
                        "destination": destination,
                        "after": candidates[-1].id,
                        "seen_types": [t for t, _ in seen],
                        "seen_keys": [k for _, k in seen],
                    },
                ).all()
                heads, ids = select_claimable(
                    candidates, claim_size=claim_size, rows_per_group=rows_per_group
                )
            if not heads:
                return 0, []
            locked = set(conn.exec_driver_sql(self._lock_rows, {"ids": ids}).scalars())
            if len(locked) != len(ids):
                ids = keep_locked_prefix(candidates, ids, locked)
            if not ids:
                return 0, []
            token = conn.exec_driver_sql(f"SELECT nextval('\"{self.schema}\".outbox_lease_seq')").scalar_one()
            rows = list(
                conn.exec_driver_sql(
                    self._lease, {"owner": owner, "token": token, "lease": lease_seconds, "ids": ids}
                ).all()
            )
        rows.sort(key=lambda r: r.id)
        return int(token), [ClaimedRow(*r) for r in rows]

    def mark(
        self,
        *,
        token: int,
        published: list[int],
        releases: list[Release],
        max_attempts: int,
        late: dict[int, datetime] | None = None,
        first_sent: dict[int, datetime | None] | None = None,
    ) -> tuple[int, list[Any], list[Any]]:
        """One transaction: late re-sends, published rows, then failures; returns (marked, rows
        that died, late re-sends counted). ``late`` maps the ids of late re-sends to the time of
        this send; ``first_sent`` maps row ids to the first_sent_at they had before the claim.
        Rows whose lease token changed (another relay took over) are left alone: fencing."""
        first_sent = first_sent or {}
        if published and not late and not releases:
            # the common case, one statement: no transaction round trips around it
            with self._connection(self._autocommit) as conn:
                params = {"ids": published, "token": token}
                marked = conn.exec_driver_sql(self._mark_published, params).rowcount
            return marked, [], []
        with self._connection(self.engine) as conn, conn.begin():
            counted: list[Any] = []
            if late:
                counted = list(
                    conn.exec_driver_sql(
                        self._count_late, {"ids": list(late), "sent_at": list(late.values()), "token": token}
                    ).all()
                )
            marked = 0
            if published:
                marked = conn.exec_driver_sql(
                    self._mark_published, {"ids": published, "token": token}
                ).rowcount
            died: list[Any] = []
            if releases:
                result = conn.exec_driver_sql(
                    self._mark_failed,
                    {
                        "ids": [r.row_id for r in releases],
                        "errors": [r.error for r in releases],
                        "delays": [r.delay_seconds for r in releases],
                        "spend": [1 if r.spend_attempt else 0 for r in releases],
                        "dead": [r.dead for r in releases],
                        "unsent": [not r.maybe_sent for r in releases],
                        "prev_first": [first_sent.get(r.row_id) for r in releases],
                        "token": token,
                        "max_attempts": max_attempts,
                    },
                ).all()
                died = [r for r in result if r.state == "dead"]
        return marked, died, counted

    def oldest_pending_age(self) -> float:
        with self.engine.connect() as conn:
            return oldest_pending_age(conn, self.schema)


def oldest_pending_age(conn: sa.Connection, schema: str) -> float:
    """Seconds since the oldest pending row was written (0 when none is pending): the lag
    gauge, the status command and the Fargate relay's scaling metric."""
    value = conn.exec_driver_sql(
        f"SELECT extract(epoch FROM now() - min(created_at)) FROM \"{schema}\".outbox WHERE state = 'pending'"
    ).scalar()
    return float(value or 0.0)
