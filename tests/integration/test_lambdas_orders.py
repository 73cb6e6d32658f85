"""The order domain on a real PostgreSQL: command, saga steps, compensations, hooks, projection."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from examples.orders import create_app, migrate_orders, order_tables, place_order
from examples.orders.exceptions import (
    InvalidOrderTransition,
    InvalidRequest,
    PaymentDeclined,
    RefundFailed,
)
from examples.orders.steps import hook_event_id
from outbox_relay import migrate, outbox_table
from saga_outbox.lambdas.tasks import run_step

pytestmark = pytest.mark.integration

ITEMS = [{"sku": "BOOK-1", "qty": 2}, {"sku": "PEN-9", "qty": 1}]


@pytest.fixture
def db(engine: sa.Engine, schema: str) -> str:
    migrate(engine, schema=schema)
    migrate_orders(engine, schema=schema)
    migrate_orders(engine, schema=schema)  # idempotent
    return schema


def outbox_rows(engine: sa.Engine, schema: str) -> list[Any]:
    t = outbox_table(schema)
    with engine.connect() as conn:
        return list(conn.execute(sa.select(t).order_by(t.c.id)).all())


def envelope_of(row: Any) -> dict[str, Any]:
    return {
        "event_id": str(row.event_id),
        "event_type": row.event_type,
        "aggregate_type": row.aggregate_type,
        "aggregate_key": row.aggregate_key,
        "occurred_at": datetime.now(UTC).isoformat(),
        "headers": row.headers,
        "payload": row.payload,
    }


def new_order(engine: sa.Engine, schema: str, **kwargs: Any) -> tuple[uuid.UUID, dict[str, Any]]:
    with engine.begin() as conn:
        order_id = place_order(
            conn,
            customer_id="c-1",
            items=ITEMS,
            amount_cents=2500,
            outbox_schema=schema,
            orders_schema=schema,
            **kwargs,
        )
    row = next(r for r in outbox_rows(engine, schema) if r.aggregate_key == str(order_id))
    return order_id, envelope_of(row)


def task(
    action: str,
    event: dict[str, Any],
    *,
    step: str,
    state: str | None = None,
    kind: str = "action",
    execution: str = "exec-1",
    workflow: str = "OrderSaga",
) -> dict[str, Any]:
    return {
        "workflow": workflow,
        "step": step,
        "action": action,
        "kind": kind,
        "execution": execution,
        "state": state or step,
        "event": event,
        "results": {},
    }


def run(engine: sa.Engine, schema: str, payload: dict[str, Any]) -> dict[str, Any]:
    return run_step(
        payload, engine=engine, registry=create_app(schema=schema).registry(), outbox_schema=schema
    )


def count(engine: sa.Engine, table: sa.Table, *where: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one())


# ---------------------------------------------------------------------------- command
def test_place_order_writes_order_and_event_in_callers_transaction(engine: sa.Engine, db: str) -> None:
    order_id, env = new_order(engine, db)
    t = order_tables(db)
    with engine.connect() as conn:
        order = conn.execute(sa.select(t.orders).where(t.orders.c.id == order_id)).one()
    assert (order.status, order.version, order.amount_cents, order.items) == ("PENDING", 1, 2500, ITEMS)
    assert env["event_type"] == "OrderPlaced"
    assert env["aggregate_type"] == "order"
    assert env["payload"] == {
        "order_id": str(order_id),
        "customer_id": "c-1",
        "items": ITEMS,
        "amount_cents": 2500,
        "status": "PENDING",
        "version": 1,
    }


def test_place_order_in_rolled_back_transaction_writes_nothing(engine: sa.Engine, db: str) -> None:
    with Session(engine) as session:
        place_order(session, customer_id="c", items=ITEMS, amount_cents=1, outbox_schema=db, orders_schema=db)
        session.rollback()
    with engine.connect() as conn:
        trans = conn.begin()
        place_order(conn, customer_id="c", items=ITEMS, amount_cents=1, outbox_schema=db, orders_schema=db)
        trans.rollback()
    assert count(engine, order_tables(db).orders) == 0
    assert outbox_rows(engine, db) == []


def test_place_order_never_commits(engine: sa.Engine, db: str) -> None:
    with Session(engine) as session:
        place_order(session, customer_id="c", items=ITEMS, amount_cents=1, outbox_schema=db, orders_schema=db)
        assert session.in_transaction()
        # nothing visible from another connection until the caller commits
        assert count(engine, order_tables(db).orders) == 0
        session.commit()
    assert count(engine, order_tables(db).orders) == 1
    assert len(outbox_rows(engine, db)) == 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"items": []}, "items"),
        ({"items": [{"sku": "", "qty": 1}]}, "items.0.sku"),
        ({"items": [{"sku": "a", "qty": 0}]}, "items.0.qty"),
        ({"amount_cents": -1}, "amount_cents"),
        ({"customer_id": ""}, "customer_id"),
        ({"simulate": {"fail_everything": True}}, "simulate"),
    ],
)
def test_place_order_rejects_bad_input(
    engine: sa.Engine, db: str, kwargs: dict[str, Any], field: str
) -> None:
    args: dict[str, Any] = {"customer_id": "c", "items": ITEMS, "amount_cents": 1, **kwargs}
    with engine.begin() as conn, pytest.raises(InvalidRequest) as info:
        place_order(conn, outbox_schema=db, orders_schema=db, **args)
    assert info.value.field == field


# ---------------------------------------------------------------------------- saga steps
def test_each_step_twice_makes_one_effect(engine: sa.Engine, db: str) -> None:
    order_id, env = new_order(engine, db)
    t = order_tables(db)
    for action, step, table in (
        ("reserve_inventory", "ReserveInventory", t.inventory_reservations),
        ("charge_payment", "ChargePayment", t.payments),
        ("create_shipment", "CreateShipment", t.shipments),
    ):
        first = run(engine, db, task(action, env, step=step))
        second = run(engine, db, task(action, env, step=step))
        assert first == second, action
        expected = len(ITEMS) if table is t.inventory_reservations else 1
        assert count(engine, table, table.c.order_id == order_id) == expected, action
    # another execution of the same event (e.g. after 90 days) has another key: a new effect
    run(engine, db, task("charge_payment", env, step="ChargePayment", execution="exec-2"))
    assert count(engine, t.payments, t.payments.c.order_id == order_id) == 2


def test_compensations_are_idempotent(engine: sa.Engine, db: str) -> None:
    order_id, env = new_order(engine, db)
    t = order_tables(db)
    run(engine, db, task("reserve_inventory", env, step="ReserveInventory"))
    run(engine, db, task("charge_payment", env, step="ChargePayment"))
    refund = task(
        "refund_payment", env, step="ChargePayment", state="CompensateChargePayment", kind="compensation"
    )
    release = task(
        "release_inventory",
        env,
        step="ReserveInventory",
        state="CompensateReserveInventory",
        kind="compensation",
    )
    assert run(engine, db, refund)["refunded_now"] == 1
    assert run(engine, db, refund) == {"order_id": str(order_id), "refunded_now": 0, "refunded_total": 1}
    assert run(engine, db, release)["released_now"] == 2
    assert run(engine, db, release) == {"order_id": str(order_id), "released_now": 0, "released_total": 2}
    with engine.connect() as conn:
        payment = conn.execute(sa.select(t.payments)).one()
        assert payment.refunded_at is not None
        assert payment.refund_idempotency_key == "exec-1:CompensateChargePayment"
        assert (
            conn.execute(
                sa.select(sa.func.count()).where(t.inventory_reservations.c.released_at.is_(None))
            ).scalar_one()
            == 0
        )


def test_compensation_without_effect_is_a_noop(engine: sa.Engine, db: str) -> None:
    """A step with an unknown outcome is compensated blindly: every compensation must succeed
    when its step never took effect."""
    order_id, env = new_order(engine, db)
    release = task(
        "release_inventory",
        env,
        step="ReserveInventory",
        state="CompensateReserveInventory",
        kind="compensation",
    )
    assert run(engine, db, release)["released_total"] == 0
    refund = task(
        "refund_payment", env, step="ChargePayment", state="CompensateChargePayment", kind="compensation"
    )
    assert run(engine, db, refund) == {"order_id": str(order_id), "refunded_now": 0, "refunded_total": 0}
    cancel = task(
        "cancel_shipment", env, step="CreateShipment", state="CompensateCreateShipment", kind="compensation"
    )
    assert run(engine, db, cancel) == {"order_id": str(order_id), "cancelled_now": 0, "cancelled_total": 0}


def test_cancel_shipment_is_idempotent(engine: sa.Engine, db: str) -> None:
    order_id, env = new_order(engine, db)
    t = order_tables(db)
    run(engine, db, task("create_shipment", env, step="CreateShipment"))
    cancel = task(
        "cancel_shipment", env, step="CreateShipment", state="CompensateCreateShipment", kind="compensation"
    )
    assert run(engine, db, cancel)["cancelled_now"] == 1
    assert run(engine, db, cancel) == {"order_id": str(order_id), "cancelled_now": 0, "cancelled_total": 1}
    assert count(engine, t.shipments, t.shipments.c.cancelled_at.is_(None)) == 0
    assert count(engine, t.shipments) == 1


def test_simulated_failures_are_deterministic_and_leave_no_effect(engine: sa.Engine, db: str) -> None:
    _, env = new_order(engine, db, simulate={"fail_payment": True, "fail_refund": True})
    t = order_tables(db)
    for _ in range(2):
        with pytest.raises(PaymentDeclined):
            run(engine, db, task("charge_payment", env, step="ChargePayment"))
    assert count(engine, t.payments) == 0
    with pytest.raises(RefundFailed):
        run(engine, db, task("refund_payment", env, step="ChargePayment", state="CompensateChargePayment"))


# ---------------------------------------------------------------------------- hooks
def test_confirm_order_emits_once(engine: sa.Engine, db: str) -> None:
    _, env = new_order(engine, db)
    confirm = task("confirm_order", env, step="ConfirmOrder", kind="hook")
    first = run(engine, db, confirm)
    second = run(engine, db, confirm)
    assert first["emitted"] is True and second["emitted"] is False
    assert first["event_id"] == second["event_id"] == str(hook_event_id("exec-1", "OrderConfirmed"))
    events = [r for r in outbox_rows(engine, db) if r.event_type == "OrderConfirmed"]
    assert len(events) == 1
    assert events[0].payload["version"] == 2 and events[0].payload["status"] == "CONFIRMED"
    assert events[0].headers["causation_id"] == env["event_id"]
    t = order_tables(db)
    with engine.connect() as conn:
        assert conn.execute(sa.select(t.orders.c.status, t.orders.c.version)).one() == ("CONFIRMED", 2)
    # a confirmed order cannot be cancelled
    with pytest.raises(InvalidOrderTransition):
        run(engine, db, task("cancel_order", env, step="CancelOrder", kind="hook"))


def test_cancel_order_emits_once(engine: sa.Engine, db: str) -> None:
    _, env = new_order(engine, db)
    cancel = task("cancel_order", env, step="CancelOrder", kind="hook")
    run(engine, db, cancel)
    run(engine, db, cancel)
    assert [r.event_type for r in outbox_rows(engine, db)] == ["OrderPlaced", "OrderCancelled"]


# ---------------------------------------------------------------------------- projection
def projection(action: str, env: dict[str, Any], execution: str) -> dict[str, Any]:
    step = "ProjectOrder" if action == "project_order" else "RecordNotification"
    return task(action, env, step=step, execution=execution, workflow="OrderProjection")


def test_projection_dedups_by_event_id_and_version(engine: sa.Engine, db: str) -> None:
    order_id, placed = new_order(engine, db)
    run(engine, db, task("confirm_order", placed, step="ConfirmOrder", kind="hook"))
    confirmed = envelope_of(next(r for r in outbox_rows(engine, db) if r.event_type == "OrderConfirmed"))
    t = order_tables(db)

    def view() -> tuple[str, int]:
        with engine.connect() as conn:
            row = conn.execute(sa.select(t.order_view).where(t.order_view.c.order_id == order_id)).one()
            return row.status, row.version

    # out of order: the newer event first, then the older one is recorded but not applied
    assert run(engine, db, projection("project_order", confirmed, "x1"))["applied"] is True
    assert run(engine, db, projection("project_order", placed, "x2"))["applied"] is False
    assert view() == ("CONFIRMED", 2)
    # the same event in another Express execution (at-least-once): a duplicate
    again = run(engine, db, projection("project_order", confirmed, "x3"))
    assert again["duplicate"] is True and again["applied"] is False
    assert count(engine, t.order_view_events) == 2
    with engine.connect() as conn:
        applied = dict(
            conn.execute(sa.select(t.order_view_events.c.event_type, t.order_view_events.c.applied)).all()
        )
    assert applied == {"OrderConfirmed": True, "OrderPlaced": False}


def test_notification_recorded_once_per_event(engine: sa.Engine, db: str) -> None:
    _, placed = new_order(engine, db)
    assert run(engine, db, projection("record_notification", placed, "x1"))["recorded"] is True
    assert run(engine, db, projection("record_notification", placed, "x2"))["recorded"] is False
    assert count(engine, order_tables(db).notifications) == 1


def test_migrate_orders_creates_no_tables_on_import(engine: sa.Engine, schema: str) -> None:
    order_tables(schema)  # building table objects touches no database
    with engine.connect() as conn:
        exists = conn.execute(
            sa.text("SELECT count(*) FROM information_schema.schemata WHERE schema_name = :s"), {"s": schema}
        ).scalar_one()
    assert exists == 0


def test_a_step_emits_its_events_to_the_apps_destinations(engine: sa.Engine, db: str) -> None:
    """ctx.enqueue routes a step's event like the app's commands do: with OrderConfirmed also
    delivered to a bus, confirming an order writes one row per destination."""
    app = create_app(schema=db)
    app.destination("audit-bus", kind="eventbridge")
    app.deliver("OrderConfirmed", to=["sqs", "audit-bus"])
    _, env = new_order(engine, db)
    for action, step in (
        ("reserve_inventory", "ReserveInventory"),
        ("charge_payment", "ChargePayment"),
        ("create_shipment", "CreateShipment"),
        ("confirm_order", "ConfirmOrder"),
    ):
        run_step(
            task(action, env, step=step),
            engine=engine,
            registry=app.registry(),
            outbox_schema=db,
            max_event_bytes=app.max_event_bytes,
            destinations_for=app.destinations_for,
        )
    with engine.connect() as conn:
        rows = (
            conn.exec_driver_sql(
                f'SELECT destination FROM "{db}".outbox'
                " WHERE event_type = 'OrderConfirmed' ORDER BY destination"
            )
            .scalars()
            .all()
        )
    assert rows == ["audit-bus", "sqs"]
