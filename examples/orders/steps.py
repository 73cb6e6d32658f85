"""Saga actions, compensations, hooks and projections of the order domain.

Every business effect is one row guarded by a UNIQUE key derived from the execution name and
the state name (:attr:`~saga_outbox.lambdas.tasks.StepContext.effect_key`): ``INSERT ... ON CONFLICT DO
NOTHING`` and then read back, so a step invoked twice makes one effect and answers the same.
Compensations are conditional updates (``... WHERE released_at IS NULL``), idempotent too.
Hooks lock the order row, so the status change and its outbox event happen once: the status
itself proves the event was enqueued (same transaction), and the event id is a uuid5 of the
execution name (``outbox_relay.enqueue`` ignores a duplicate event id).
Projections dedup by event id (``order_view_events``) and apply only newer versions.

Failures are injected deterministically per order by a :data:`FaultInjector`; the default
reads the ``simulate`` flags the order command put in the ``OrderPlaced`` payload.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from saga_outbox import StepContext

from .commands import AGGREGATE_TYPE
from .exceptions import (
    InvalidOrderTransition,
    InventoryUnavailable,
    MalformedOrderEvent,
    PaymentDeclined,
    RefundFailed,
    ShipmentFailed,
)
from .schema import OrderTables

__all__ = [
    "FaultInjector",
    "apply_order_event",
    "cancel_order",
    "cancel_shipment",
    "charge_payment",
    "confirm_order",
    "create_shipment",
    "hook_event_id",
    "project_order",
    "record_notification",
    "refund_payment",
    "release_inventory",
    "reserve_inventory",
    "simulated_faults",
]

#: namespace of the deterministic ids of events emitted by hooks
HOOK_EVENT_NAMESPACE = uuid.UUID("5b0c9a52-3f0e-4c55-9d51-6f2c3e0b7a11")

FaultInjector = Callable[[StepContext, str], bool]
"""``(task, point) -> fail?``; points: fail_inventory, fail_payment, fail_shipping, fail_refund."""


def simulated_faults(task: StepContext, point: str) -> bool:
    """The default injector: the ``simulate`` flags carried by the order event (demo only;
    the command API accepts them only when ``ALLOW_SIMULATION`` is on)."""
    flags = task.payload.get("simulate")
    return isinstance(flags, dict) and bool(flags.get(point))


def _order_id(task: StepContext) -> uuid.UUID:
    try:
        return uuid.UUID(str(task.payload["order_id"]))
    except (KeyError, ValueError) as exc:
        raise MalformedOrderEvent(
            f"{task.event_type} event {task.event.get('event_id')} has no order_id"
        ) from exc


# ---------------------------------------------------------------------------- saga actions
def _effect_once(ctx: StepContext, table: sa.Table, *columns: Any, **values: Any) -> Any:
    """Record a business effect under the task's effect key, or find the one recorded by an
    earlier invocation: the UNIQUE key, not the caller, decides whether it happens."""
    task = ctx
    ctx.conn.execute(
        pg_insert(table)
        .values(idempotency_key=task.effect_key, execution_name=task.execution, **values)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
    )
    return ctx.conn.execute(
        sa.select(table.c.id, *columns).where(table.c.idempotency_key == task.effect_key)
    ).one()


def _adopt_dynamodb_order(ctx: StepContext, *, tables: OrderTables, order_id: uuid.UUID) -> None:
    """An order placed on the DynamoDB path (``ddb_commands``) lives in DynamoDB; the saga
    keeps its own record of it here, with its effects (their foreign keys, the status hooks).
    The OrderPlaced payload carries the whole order, and a repeat is a no-op."""
    if ctx.payload.get("placed_in") != "dynamodb":
        return
    ctx.conn.execute(
        pg_insert(tables.orders)
        .values(
            id=order_id,
            customer_id=str(ctx.payload["customer_id"]),
            items=ctx.payload["items"],
            amount_cents=int(ctx.payload["amount_cents"]),
            status="PENDING",
            version=1,
        )
        .on_conflict_do_nothing(index_elements=["id"])
    )


def reserve_inventory(
    ctx: StepContext, *, tables: OrderTables, faults: FaultInjector = simulated_faults
) -> dict[str, Any]:
    task, t = ctx, tables.inventory_reservations
    order_id = _order_id(task)
    if faults(task, "fail_inventory"):
        raise InventoryUnavailable(f"order {order_id}: inventory unavailable (simulated)")
    items = task.payload.get("items") or []
    _adopt_dynamodb_order(ctx, tables=tables, order_id=order_id)
    rows = [
        {
            "idempotency_key": f"{task.effect_key}#{i}",
            "execution_name": task.execution,
            "order_id": order_id,
            "sku": str(item["sku"]),
            "qty": int(item["qty"]),
        }
        for i, item in enumerate(items)
    ]
    if not rows:
        raise MalformedOrderEvent(f"order {order_id}: no items to reserve")
    ctx.conn.execute(pg_insert(t).values(rows).on_conflict_do_nothing(index_elements=["idempotency_key"]))
    stored = ctx.conn.execute(
        sa.select(t.c.id, t.c.sku, t.c.qty)
        .where(t.c.idempotency_key.in_([r["idempotency_key"] for r in rows]))
        .order_by(t.c.id)
    ).all()
    return {
        "order_id": str(order_id),
        "reservations": [{"id": r.id, "sku": r.sku, "qty": r.qty} for r in stored],
    }


def release_inventory(ctx: StepContext, *, tables: OrderTables) -> dict[str, Any]:
    task, t = ctx, tables.inventory_reservations
    order_id = _order_id(task)
    released = ctx.conn.execute(
        t.update()
        .where(t.c.execution_name == task.execution, t.c.order_id == order_id, t.c.released_at.is_(None))
        .values(released_at=sa.func.now())
        .returning(t.c.id)
    ).all()
    total = ctx.conn.execute(
        sa.select(sa.func.count()).where(t.c.execution_name == task.execution, t.c.order_id == order_id)
    ).scalar_one()
    return {"order_id": str(order_id), "released_now": len(released), "released_total": total}


def charge_payment(
    ctx: StepContext, *, tables: OrderTables, faults: FaultInjector = simulated_faults
) -> dict[str, Any]:
    task, t = ctx, tables.payments
    order_id = _order_id(task)
    if faults(task, "fail_payment"):
        raise PaymentDeclined(f"order {order_id}: payment declined (simulated)")
    amount = int(task.payload.get("amount_cents", 0))
    row = _effect_once(ctx, t, t.c.amount_cents, order_id=order_id, amount_cents=amount)
    return {"order_id": str(order_id), "payment_id": row.id, "amount_cents": row.amount_cents}


def refund_payment(
    ctx: StepContext, *, tables: OrderTables, faults: FaultInjector = simulated_faults
) -> dict[str, Any]:
    task, t = ctx, tables.payments
    order_id = _order_id(task)
    if faults(task, "fail_refund"):
        raise RefundFailed(f"order {order_id}: refund failed (simulated)")
    refunded = ctx.conn.execute(
        t.update()
        .where(t.c.execution_name == task.execution, t.c.order_id == order_id, t.c.refunded_at.is_(None))
        .values(refunded_at=sa.func.now(), refund_idempotency_key=task.effect_key)
        .returning(t.c.id)
    ).all()
    total = ctx.conn.execute(
        sa.select(sa.func.count()).where(
            t.c.execution_name == task.execution, t.c.order_id == order_id, t.c.refunded_at.is_not(None)
        )
    ).scalar_one()
    return {"order_id": str(order_id), "refunded_now": len(refunded), "refunded_total": total}


def create_shipment(
    ctx: StepContext, *, tables: OrderTables, faults: FaultInjector = simulated_faults
) -> dict[str, Any]:
    task, t = ctx, tables.shipments
    order_id = _order_id(task)
    if faults(task, "fail_shipping"):
        raise ShipmentFailed(f"order {order_id}: shipment could not be created (simulated)")
    tracking = "TRK-" + uuid.uuid5(HOOK_EVENT_NAMESPACE, task.effect_key).hex[:12].upper()
    row = _effect_once(ctx, t, t.c.tracking_number, order_id=order_id, tracking_number=tracking)
    return {"order_id": str(order_id), "shipment_id": row.id, "tracking_number": row.tracking_number}


def cancel_shipment(ctx: StepContext, *, tables: OrderTables) -> dict[str, Any]:
    """Compensation of create_shipment: idempotent, and a success when no shipment exists (the
    step may have failed before or after its commit: an unknown outcome is undone blindly)."""
    task, t = ctx, tables.shipments
    order_id = _order_id(task)
    cancelled = ctx.conn.execute(
        t.update()
        .where(t.c.execution_name == task.execution, t.c.order_id == order_id, t.c.cancelled_at.is_(None))
        .values(cancelled_at=sa.func.now())
        .returning(t.c.id)
    ).all()
    total = ctx.conn.execute(
        sa.select(sa.func.count()).where(
            t.c.execution_name == task.execution, t.c.order_id == order_id, t.c.cancelled_at.is_not(None)
        )
    ).scalar_one()
    return {"order_id": str(order_id), "cancelled_now": len(cancelled), "cancelled_total": total}


# ---------------------------------------------------------------------------- hooks
def hook_event_id(execution: str, event_type: str) -> uuid.UUID:
    """Deterministic id of the event a hook emits: a repeated hook cannot emit twice."""
    return uuid.uuid5(HOOK_EVENT_NAMESPACE, f"{execution}:{event_type}")


def _transition(ctx: StepContext, *, tables: OrderTables, target: str, event_type: str) -> dict[str, Any]:
    task, orders = ctx, tables.orders
    order_id = _order_id(task)
    event_id = hook_event_id(task.execution, event_type)
    row = ctx.conn.execute(
        sa.select(orders.c.status, orders.c.version, orders.c.customer_id, orders.c.amount_cents)
        .where(orders.c.id == order_id)
        .with_for_update()
    ).first()
    if row is None:
        raise InvalidOrderTransition(f"order {order_id} does not exist")
    if row.status == target:
        # Already done: the status change and its event committed together earlier.
        return {
            "order_id": str(order_id),
            "status": target,
            "version": row.version,
            "event_id": str(event_id),
            "emitted": False,
        }
    if row.status != "PENDING":
        raise InvalidOrderTransition(f"order {order_id} is {row.status}; cannot become {target}")
    version = ctx.conn.execute(
        orders.update()
        .where(orders.c.id == order_id)
        .values(status=target, version=orders.c.version + 1, updated_at=sa.func.now())
        .returning(orders.c.version)
    ).scalar_one()
    ctx.enqueue(
        event_type,
        {
            "order_id": str(order_id),
            "customer_id": row.customer_id,
            "amount_cents": row.amount_cents,
            "status": target,
            "version": version,
        },
        aggregate_type=AGGREGATE_TYPE,
        aggregate_key=str(order_id),
        event_id=event_id,
    )
    return {
        "order_id": str(order_id),
        "status": target,
        "version": version,
        "event_id": str(event_id),
        "emitted": True,
    }


def confirm_order(ctx: StepContext, *, tables: OrderTables) -> dict[str, Any]:
    """on_success hook: PENDING -> CONFIRMED and ``OrderConfirmed`` via the outbox."""
    return _transition(ctx, tables=tables, target="CONFIRMED", event_type="OrderConfirmed")


def cancel_order(ctx: StepContext, *, tables: OrderTables) -> dict[str, Any]:
    """on_compensated hook: PENDING -> CANCELLED and ``OrderCancelled`` via the outbox."""
    return _transition(ctx, tables=tables, target="CANCELLED", event_type="OrderCancelled")


# ---------------------------------------------------------------------------- projections
def project_order(ctx: StepContext, *, tables: OrderTables) -> dict[str, Any]:
    """Apply an order event to ``order_view`` once per event id, and only if newer."""
    return apply_order_event(
        ctx.conn, tables, event_id=ctx.event_id, event_type=ctx.event_type, payload=ctx.payload
    )


def apply_order_event(
    conn: sa.Connection,
    tables: OrderTables,
    *,
    event_id: uuid.UUID,
    event_type: str,
    payload: Mapping[str, Any],
) -> dict[str, Any]:
    """The projection itself, on any ``tables`` (the live read model or a generation being
    rebuilt by :mod:`examples.orders.projection_rebuild`) inside the caller's transaction."""
    try:
        order_id = uuid.UUID(str(payload["order_id"]))
    except (KeyError, ValueError) as exc:
        raise MalformedOrderEvent(f"{event_type} event {event_id} has no order_id") from exc
    try:
        version, status = int(payload["version"]), str(payload["status"])
    except (KeyError, ValueError, TypeError) as exc:
        raise MalformedOrderEvent(f"event {event_id} has no version/status to project") from exc
    seen = tables.order_view_events
    first_time = conn.execute(
        pg_insert(seen)
        .values(event_id=event_id, order_id=order_id, event_type=event_type, version=version, applied=False)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(seen.c.event_id)
    ).first()
    if first_time is None:
        return {"order_id": str(order_id), "event_id": str(event_id), "applied": False, "duplicate": True}
    view = tables.order_view
    stmt = pg_insert(view).values(
        order_id=order_id,
        customer_id=payload.get("customer_id"),
        amount_cents=payload.get("amount_cents"),
        status=status,
        version=version,
        last_event_id=event_id,
    )
    applied = conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["order_id"],
            set_={
                "status": stmt.excluded.status,
                "version": stmt.excluded.version,
                "last_event_id": stmt.excluded.last_event_id,
                "customer_id": sa.func.coalesce(stmt.excluded.customer_id, view.c.customer_id),
                "amount_cents": sa.func.coalesce(stmt.excluded.amount_cents, view.c.amount_cents),
                "updated_at": sa.func.now(),
            },
            where=view.c.version < stmt.excluded.version,
        ).returning(view.c.order_id)
    ).first()
    if applied is not None:
        conn.execute(seen.update().where(seen.c.event_id == event_id).values(applied=True))
    return {
        "order_id": str(order_id),
        "event_id": str(event_id),
        "applied": applied is not None,
        "duplicate": False,
    }


_MESSAGES = {
    "OrderPlaced": "Thanks! Order {order_id} was received.",
    "OrderConfirmed": "Good news: order {order_id} is confirmed and on its way.",
    "OrderCancelled": "Sorry: order {order_id} was cancelled and any payment refunded.",
}


def record_notification(ctx: StepContext, *, tables: OrderTables) -> dict[str, Any]:
    """Record the customer notification of an event, once per event id."""
    task, t = ctx, tables.notifications
    order_id, event_id = _order_id(task), task.event_id
    message = _MESSAGES.get(task.event_type, "Order {order_id}: " + task.event_type).format(order_id=order_id)
    inserted = ctx.conn.execute(
        pg_insert(t)
        .values(event_id=event_id, order_id=order_id, event_type=task.event_type, message=message)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(t.c.id)
    ).first()
    return {"order_id": str(order_id), "event_id": str(event_id), "recorded": inserted is not None}
