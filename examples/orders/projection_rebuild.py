"""Rebuild the order projection into a fresh generation, verify it, then switch to it.

The recipe any app can follow with its own projection (docs/replay.md):

1. :func:`rebuild` creates the generation's tables (``order_view__g<N>`` and
   ``order_view_events__g<N>``, same columns as the live ones) and replays the whole history of
   order events (live and archived outbox rows) into them through the projection's own code
   (:func:`~examples.orders.steps.apply_order_event`), each page in the transaction that
   advances the replay checkpoint: a killed rebuild resumes where it stopped, applying every
   event once. The live read model is not touched.
2. :func:`verify` compares the generation with the live tables: row counts, and per order the
   version, status and last event.
3. :func:`switch` locks the live tables (the live projection's writers wait), applies to the
   generation every event the live projection processed since the rebuild read it, verifies,
   and renames: the generation becomes ``order_view`` and the former live tables are kept as
   ``*__retired_g<N>``. One transaction: readers see the old read model or the new one.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from outbox_relay import DEFAULT_SCHEMA
from outbox_relay.replay import (
    HandlerDestination,
    ReplayedEvent,
    ReplayOptions,
    ReplayProgress,
    ReplayResult,
    ReplaySelection,
    replay,
)

from .commands import AGGREGATE_TYPE
from .exceptions import MalformedOrderEvent
from .schema import DEFAULT_ORDERS_SCHEMA, OrderTables, order_tables
from .steps import apply_order_event

__all__ = [
    "PROJECTED_EVENTS",
    "ProjectionMismatch",
    "Verification",
    "apply_order_events",
    "rebuild",
    "switch",
    "verify",
]

#: the event types the OrderProjection workflow is routed (app.py)
PROJECTED_EVENTS = ("OrderPlaced", "OrderConfirmed", "OrderCancelled")
# what "equal" means for one read-model row (updated_at is when it was written, not what)
_COMPARED = ("order_id", "customer_id", "amount_cents", "status", "version", "last_event_id")


def _check_generation(generation: int) -> int:
    if isinstance(generation, bool) or not isinstance(generation, int) or not 1 <= generation <= 9999:
        raise ValueError(f"generation must be an integer from 1 to 9999, got {generation!r}")
    return generation


def generation_tables(schema: str, generation: int) -> OrderTables:
    """The live :class:`OrderTables` with the projection's two tables swapped for generation
    ``generation``'s (same columns; no database access)."""
    live = order_tables(schema)
    md = sa.MetaData(schema=schema)
    suffix = f"__g{_check_generation(generation)}"
    return dataclasses.replace(
        live,
        metadata=md,
        order_view=live.order_view.to_metadata(md, name=f"order_view{suffix}"),
        order_view_events=live.order_view_events.to_metadata(md, name=f"order_view_events{suffix}"),
    )


def apply_order_events(conn: sa.Connection, tables: OrderTables, events: Sequence[ReplayedEvent]) -> int:
    """:func:`~examples.orders.steps.apply_order_event` for a page of events in two statements
    instead of three per event (a rebuild replays the whole history): the same rules, set-wise.
    An event is recorded once per event id; it is applied when its version is above the read
    model's and above every earlier (in outbox order) event of its order in the page; customer
    and amount keep the last applied non-null value. :func:`verify` compares the result with
    the live read model the per-event code built. Returns the number of events applied."""
    rows = []
    for seq, e in enumerate(events):
        payload = json.loads(e.payload_json)
        try:
            order_id = uuid.UUID(str(payload["order_id"]))
            version, status = int(payload["version"]), str(payload["status"])
        except (KeyError, ValueError, TypeError) as exc:
            raise MalformedOrderEvent(
                f"event {e.event_id} has no order_id/version/status to project"
            ) from exc
        amount = payload.get("amount_cents")
        rows.append(
            (seq, e.event_id, order_id, e.event_type, version, status, payload.get("customer_id"), amount)
        )
    if not rows:
        return 0
    cols = list(zip(*rows, strict=True))
    params = {
        k: list(v)
        for k, v in zip(("seq", "eid", "oid", "typ", "ver", "st", "cust", "amt"), cols, strict=True)
    }
    q = f'"{tables.schema}"'
    view, seen = f"{q}.{tables.order_view.name}", f"{q}.{tables.order_view_events.name}"
    page = (
        "SELECT * FROM unnest(%(seq)s::int[], %(eid)s::uuid[], %(oid)s::uuid[], %(typ)s::text[], "
        "%(ver)s::int[], %(st)s::text[], %(cust)s::text[], %(amt)s::bigint[]) "
        "AS t(seq, event_id, order_id, event_type, version, status, customer_id, amount_cents)"
    )
    fresh = (
        conn.exec_driver_sql(
            f"INSERT INTO {seen} (event_id, order_id, event_type, version, applied) "
            f"SELECT event_id, order_id, event_type, version, false FROM ({page}) AS p ORDER BY seq "
            "ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
            params,
        )
        .scalars()
        .all()
    )
    if not fresh:
        return 0
    lowest = "-2147483648"
    applied = conn.exec_driver_sql(
        f"""WITH page AS ({page}),
        ranked AS (
            SELECT p.*, v.version AS view_version,
                   max(p.version) OVER (PARTITION BY p.order_id ORDER BY p.seq
                                        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_max
            FROM page p LEFT JOIN {view} v ON v.order_id = p.order_id
            WHERE p.event_id = ANY(%(fresh)s::uuid[])),
        applied AS (
            SELECT * FROM ranked
            WHERE version > greatest(coalesce(view_version, {lowest}), coalesce(prev_max, {lowest}))),
        final AS (
            SELECT order_id,
                   (array_agg(status ORDER BY seq DESC))[1] AS status,
                   (array_agg(version ORDER BY seq DESC))[1] AS version,
                   (array_agg(event_id ORDER BY seq DESC))[1] AS last_event_id,
                   (array_agg(customer_id ORDER BY seq DESC) FILTER (WHERE customer_id IS NOT NULL))[1]
                       AS customer_id,
                   (array_agg(amount_cents ORDER BY seq DESC) FILTER (WHERE amount_cents IS NOT NULL))[1]
                       AS amount_cents
            FROM applied GROUP BY order_id),
        upsert AS (
            INSERT INTO {view} AS v (order_id, customer_id, amount_cents, status, version, last_event_id)
            SELECT order_id, customer_id, amount_cents, status, version, last_event_id FROM final
            ON CONFLICT (order_id) DO UPDATE SET
                status = excluded.status, version = excluded.version,
                last_event_id = excluded.last_event_id,
                customer_id = coalesce(excluded.customer_id, v.customer_id),
                amount_cents = coalesce(excluded.amount_cents, v.amount_cents),
                updated_at = now()
            RETURNING 1)
        UPDATE {seen} SET applied = true WHERE event_id IN (SELECT event_id FROM applied)
        RETURNING event_id""",
        {**params, "fresh": list(fresh)},
    ).all()
    return len(applied)


def run_id(schema: str, generation: int) -> str:
    """The replay run of a generation: re-running :func:`rebuild` resumes it."""
    return f"rebuild-{schema}-order_view-g{_check_generation(generation)}"


def rebuild(
    engine: sa.Engine,
    *,
    generation: int,
    schema: str = DEFAULT_ORDERS_SCHEMA,
    outbox_schema: str = DEFAULT_SCHEMA,
    page_size: int = 1000,
    rate: float | None = None,
    on_progress: Callable[[ReplayProgress], None] | None = None,
) -> ReplayResult:
    """Create generation ``generation`` and replay every order event into it (or resume)."""
    gen = generation_tables(schema, generation)
    with engine.begin() as conn:
        gen.metadata.create_all(conn, checkfirst=True)

    def project(conn: sa.Connection, events: Sequence[ReplayedEvent]) -> None:
        apply_order_events(conn, gen, events)

    return replay(
        engine,
        destination=HandlerDestination(f"{schema}.{gen.order_view.name}", project),
        selection=ReplaySelection(event_types=PROJECTED_EVENTS, aggregate_types=(AGGREGATE_TYPE,)),
        options=ReplayOptions(
            run_id=run_id(schema, generation), schema=outbox_schema, page_size=page_size, rate=rate
        ),
        on_progress=on_progress,
    )


@dataclass(frozen=True, kw_only=True)
class Verification:
    """Live against rebuilt. ``differing`` lists orders (up to 20) whose rows differ and are
    not just ``ahead`` (the rebuild saw events the live projection has not processed yet)."""

    live_rows: int
    rebuilt_rows: int
    live_events: int
    rebuilt_events: int
    differing: list[str] = field(default_factory=list)
    differing_count: int = 0
    ahead_count: int = 0

    @property
    def equal(self) -> bool:
        return self.differing_count == 0


class ProjectionMismatch(Exception):
    """The rebuilt generation differs from the live read model: nothing was switched."""

    def __init__(self, verification: Verification) -> None:
        super().__init__(
            f"the rebuilt projection differs from the live one on {verification.differing_count} order(s) "
            f"(first: {', '.join(verification.differing[:5])}); live {verification.live_rows} rows, "
            f"rebuilt {verification.rebuilt_rows}: nothing switched"
        )
        self.verification = verification


def verify(
    bind: sa.Engine | sa.Connection, *, generation: int, schema: str = DEFAULT_ORDERS_SCHEMA
) -> Verification:
    if isinstance(bind, sa.Engine):
        with bind.connect() as conn:
            return _verify(conn, order_tables(schema), generation_tables(schema, generation))
    return _verify(bind, order_tables(schema), generation_tables(schema, generation))


def _verify(conn: sa.Connection, live: OrderTables, gen: OrderTables) -> Verification:
    def count(t: sa.Table) -> int:
        return int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())

    lv, gv = live.order_view, gen.order_view
    row = sa.tuple_(*(lv.c[c] for c in _COMPARED))
    other = sa.tuple_(*(gv.c[c] for c in _COMPARED))
    pairs = (
        sa.select(
            sa.func.coalesce(lv.c.order_id, gv.c.order_id).label("order_id"),
            lv.c.version.label("live_version"),
            gv.c.version.label("gen_version"),
        )
        .select_from(lv.join(gv, lv.c.order_id == gv.c.order_id, full=True))
        .where(sa.or_(lv.c.order_id.is_(None), gv.c.order_id.is_(None), row.is_distinct_from(other)))
        .subquery()
    )
    ahead = sa.or_(pairs.c.live_version.is_(None), pairs.c.gen_version > pairs.c.live_version)
    ahead_count = int(conn.execute(sa.select(sa.func.count()).where(ahead)).scalar_one())
    differing = conn.execute(
        sa.select(pairs.c.order_id).where(sa.not_(ahead)).order_by(pairs.c.order_id)
    ).scalars()
    ids = [str(x) for x in differing]
    return Verification(
        live_rows=count(lv),
        rebuilt_rows=count(gv),
        live_events=count(live.order_view_events),
        rebuilt_events=count(gen.order_view_events),
        differing=ids[:20],
        differing_count=len(ids),
        ahead_count=ahead_count,
    )


def switch(
    engine: sa.Engine,
    *,
    generation: int,
    schema: str = DEFAULT_ORDERS_SCHEMA,
    outbox_schema: str = DEFAULT_SCHEMA,
    require_equal: bool = True,
) -> Verification:
    """Catch up, verify and make generation ``generation`` the live read model, atomically."""
    live, gen = order_tables(schema), generation_tables(schema, generation)
    q = f'"{schema}"'
    with engine.begin() as conn:
        # the live projection's writes (and readers) wait for this short transaction; a waiting
        # statement resolves the table name again once it has the lock, so it lands in the new one
        conn.exec_driver_sql(
            f"LOCK TABLE {q}.order_view, {q}.order_view_events, {q}.{gen.order_view.name}, "
            f"{q}.{gen.order_view_events.name} IN ACCESS EXCLUSIVE MODE"
        )
        _catch_up(conn, live, gen, outbox_schema)
        result = _verify(conn, live, gen)
        if require_equal and not result.equal:
            raise ProjectionMismatch(result)
        retired = f"__retired_g{generation}"
        for name in ("order_view", "order_view_events"):
            conn.exec_driver_sql(f"ALTER TABLE {q}.{name} RENAME TO {name}{retired}")
            conn.exec_driver_sql(f"ALTER TABLE {q}.{name}__g{generation} RENAME TO {name}")
    return result


def _catch_up(conn: sa.Connection, live: OrderTables, gen: OrderTables, outbox_schema: str) -> int:
    """Apply to the generation, in outbox id order, the events the live projection processed
    that the generation has not seen (published after the rebuild's replay read the outbox)."""
    seen_live, seen_gen = live.order_view_events, gen.order_view_events
    missing = [
        str(e)
        for e in conn.execute(
            sa.select(seen_live.c.event_id).where(
                ~sa.exists().where(seen_gen.c.event_id == seen_live.c.event_id)
            )
        ).scalars()
    ]
    if not missing:
        return 0
    o = f'"{outbox_schema}"'
    cols, wanted = "id, event_id, event_type, payload", "event_id = ANY(%(ids)s::uuid[])"
    rows = conn.exec_driver_sql(
        f"SELECT DISTINCT ON (id) {cols} FROM (SELECT {cols} FROM {o}.outbox WHERE {wanted} "
        f"AND payload <> 'null'::jsonb UNION ALL SELECT {cols} FROM {o}.outbox_archive WHERE {wanted}"
        ") AS found ORDER BY id",
        {"ids": missing},
    ).all()
    for r in rows:
        payload: Any = r.payload if isinstance(r.payload, dict) else json.loads(r.payload)
        apply_order_event(conn, gen, event_id=r.event_id, event_type=r.event_type, payload=payload)
    return len(rows)
