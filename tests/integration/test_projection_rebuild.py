"""The order projection rebuilt into a fresh generation from the whole history (live and
archived outbox rows), verified against the live one, then switched to, atomically."""

from __future__ import annotations

import json
import random
import uuid
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from examples.orders.commands import AGGREGATE_TYPE
from examples.orders.projection_rebuild import (
    ProjectionMismatch,
    generation_tables,
    rebuild,
    run_id,
    switch,
    verify,
)
from examples.orders.schema import migrate_orders, order_tables
from examples.orders.steps import apply_order_event
from outbox_relay import enqueue_many, purge_published
from outbox_relay.exceptions import ReplayDeliveryError

pytestmark = pytest.mark.integration

COMPARED = "order_id, customer_id, amount_cents, status, version, last_event_id"


@pytest.fixture
def orders_schema(engine: sa.Engine, outbox: str) -> str:
    name = f"{outbox}_orders"
    migrate_orders(engine, schema=name)
    yield name
    with engine.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def history(n_orders: int, *, seed: int = 3) -> list[dict[str, Any]]:
    """OrderPlaced (v1) for every order, then OrderConfirmed or OrderCancelled (v2) for most,
    interleaved across orders as real traffic is; plus one event type the projection ignores."""
    rng = random.Random(seed)
    placed = []
    for _ in range(n_orders):
        oid = str(uuid.uuid4())
        payload = {
            "order_id": oid,
            "customer_id": f"c{rng.randrange(50)}",
            "amount_cents": rng.randrange(100, 9000),
        }
        placed.append(_event(oid, "OrderPlaced", {**payload, "status": "PENDING", "version": 1}))
    later = [
        _event(e["aggregate_key"], t, {"order_id": e["aggregate_key"], "status": s, "version": 2})
        for e in placed
        for t, s in [
            rng.choice([("OrderConfirmed", "CONFIRMED"), ("OrderCancelled", "CANCELLED"), (None, None)])
        ]
        if t
    ]
    events = (
        placed[: n_orders // 2]
        + later[: len(later) // 2]
        + placed[n_orders // 2 :]
        + later[len(later) // 2 :]
    )
    events.insert(
        3, _event(placed[0]["aggregate_key"], "OrderAudited", {"order_id": placed[0]["aggregate_key"]})
    )
    stale = {**placed[1]["payload"], "customer_id": "someone-else"}  # a late v1: recorded, not applied
    events.append(_event(placed[1]["aggregate_key"], "OrderPlaced", stale))
    return events


def _event(order_id: str, event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "aggregate_type": AGGREGATE_TYPE,
        "aggregate_key": order_id,
        "event_type": event_type,
        "payload": payload,
    }


def publish_and_project_live(
    engine: sa.Engine, outbox: str, orders: str, events: list[dict[str, Any]]
) -> None:
    """Enqueue, mark published, and apply each to the live read model with the code the
    OrderProjection's ProjectOrder step runs (project_order delegates to apply_order_event);
    the saga machinery between them is tested elsewhere and is not what a rebuild replaces."""
    live = order_tables(orders)
    with engine.begin() as conn:
        ids = enqueue_many(conn, events, schema=outbox)
        conn.exec_driver_sql(
            f"UPDATE \"{outbox}\".outbox SET state = 'published', published_at = now() - interval '2 days' "
            "WHERE event_id = ANY(%(ids)s)",
            {"ids": ids},
        )
        for eid, e in zip(ids, events, strict=True):
            if e["event_type"] != "OrderAudited":  # not routed to the projection
                apply_order_event(conn, live, event_id=eid, event_type=e["event_type"], payload=e["payload"])


def rows(engine: sa.Engine, table: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(f"SELECT {COMPARED} FROM {table} ORDER BY order_id")]


def test_rebuild_verify_switch_equals_the_live_projection(engine, outbox, orders_schema):
    q = f'"{orders_schema}"'
    events = history(120)
    publish_and_project_live(engine, outbox, orders_schema, events)
    # most of the history is archived: the rebuild must read outbox_archive as well
    assert purge_published(engine, schema=outbox, older_than=timedelta(days=1), archive=True) > 100
    before = rows(engine, f"{q}.order_view")
    assert len(before) == 120

    result = rebuild(engine, generation=2, schema=orders_schema, outbox_schema=outbox, page_size=25)
    projected = len(events) - 1  # all but the OrderAudited event
    assert result.finished and result.delivered == result.delivered_by_run == projected
    assert rows(engine, f"{q}.order_view") == before  # the live read model untouched
    v = verify(engine, generation=2, schema=orders_schema)
    assert v.equal and (v.live_rows, v.rebuilt_rows) == (120, 120) and v.live_events == v.rebuilt_events
    assert rows(engine, f"{q}.order_view__g2") == before
    with engine.connect() as conn:  # the page-wise projection records and applies as the per-event one
        flags = [
            sorted(conn.exec_driver_sql(f"SELECT event_id, version, applied FROM {q}.{t}").all())
            for t in ("order_view_events", "order_view_events__g2")
        ]
    assert flags[0] == flags[1] and sum(not applied for _, _, applied in flags[0]) == 1

    # traffic after the rebuild read the outbox: the live projection gets it, the switch catches up
    oid = before[0][0]
    publish_and_project_live(
        engine,
        outbox,
        orders_schema,
        [_event(str(oid), "OrderCancelled", {"order_id": str(oid), "status": "CANCELLED", "version": 3})],
    )
    live_now = rows(engine, f"{q}.order_view")
    assert not verify(engine, generation=2, schema=orders_schema).equal
    switched = switch(engine, generation=2, schema=orders_schema, outbox_schema=outbox)
    assert switched.equal
    assert rows(engine, f"{q}.order_view") == live_now  # the new generation, now under the live name
    assert rows(engine, f"{q}.order_view__retired_g2") == live_now
    with engine.connect() as conn:
        names = set(
            conn.exec_driver_sql(
                "SELECT tablename FROM pg_tables WHERE schemaname = %(s)s", {"s": orders_schema}
            ).scalars()
        )
    assert {
        "order_view",
        "order_view_events",
        "order_view__retired_g2",
        "order_view_events__retired_g2",
    } <= names
    assert "order_view__g2" not in names
    # the live projection goes on writing into the new read model, deduplicated as before
    with engine.begin() as conn:
        e = apply_order_event(
            conn,
            order_tables(orders_schema),
            event_id=uuid.uuid4(),
            event_type="OrderConfirmed",
            payload={"order_id": str(oid), "status": "CONFIRMED", "version": 4},
        )
    assert e["applied"]


def test_a_failed_rebuild_resumes_and_applies_each_event_once(engine, outbox, orders_schema, monkeypatch):
    events = history(60)
    publish_and_project_live(engine, outbox, orders_schema, events)
    import examples.orders.projection_rebuild as module

    calls = {"n": 0}
    real = module.apply_order_events

    def crashes_once(conn: Any, tables: Any, page: Any) -> Any:
        calls["n"] += 1
        applied = real(conn, tables, page)  # written, then lost with the transaction
        if calls["n"] == 3:
            raise ConnectionError("lost the database mid-page")
        return applied

    monkeypatch.setattr(module, "apply_order_events", crashes_once)
    with pytest.raises(ReplayDeliveryError, match="lost the database mid-page"):
        rebuild(engine, generation=3, schema=orders_schema, outbox_schema=outbox, page_size=15)
    resumed = rebuild(engine, generation=3, schema=orders_schema, outbox_schema=outbox, page_size=15)
    projected = sum(1 for e in events if e["event_type"] != "OrderAudited")
    assert resumed.resumed_from_id > 0 and resumed.delivered_by_run == projected
    gen = generation_tables(orders_schema, 3)
    with engine.connect() as conn:
        applied = conn.execute(sa.select(sa.func.count()).select_from(gen.order_view_events)).scalar_one()
        run = conn.exec_driver_sql(
            f'SELECT replayed FROM "{outbox}".replay_checkpoints WHERE run_id = %(r)s',
            {"r": run_id(orders_schema, 3)},
        ).scalar_one()
    assert applied == run == projected
    assert verify(engine, generation=3, schema=orders_schema).equal


def test_a_differing_generation_is_not_switched(engine, outbox, orders_schema):
    publish_and_project_live(engine, outbox, orders_schema, history(20))
    rebuild(engine, generation=4, schema=orders_schema, outbox_schema=outbox)
    with engine.begin() as conn:  # a projection bug in the new generation
        victim = conn.exec_driver_sql(
            f"UPDATE \"{orders_schema}\".order_view__g4 SET status = 'LOST' WHERE order_id = "
            f'(SELECT order_id FROM "{orders_schema}".order_view__g4 ORDER BY order_id LIMIT 1) '
            "RETURNING order_id"
        ).scalar_one()
    with pytest.raises(ProjectionMismatch, match=str(victim)) as info:
        switch(engine, generation=4, schema=orders_schema, outbox_schema=outbox)
    assert info.value.verification.differing == [str(victim)]
    with engine.connect() as conn:  # nothing renamed
        assert (
            conn.exec_driver_sql(f'SELECT count(*) FROM "{orders_schema}".order_view__g4').scalar_one() == 20
        )


def test_generation_numbers_are_checked():
    with pytest.raises(ValueError, match="generation must be an integer from 1 to 9999, got 0"):
        generation_tables("orders", 0)
    assert json.dumps(run_id("orders", 7)) == '"rebuild-orders-order_view-g7"'
