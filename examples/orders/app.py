"""The orders app: what a user's own module looks like.

Every entry point is pointed at it: ``saga-outbox local run --app examples.orders.app:app``,
``SAGA_OUTBOX_APP=examples.orders.app:app`` in Lambda, and
``SagaOutbox(stack, "Orders", app="examples.orders.app:app", ...)`` in the CDK app.
:func:`create_app` builds one on another schema or with other fault injection (tests, chaos).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from saga_outbox import SagaApp, StepContext

from . import steps
from .schema import DEFAULT_ORDERS_SCHEMA, migrate_orders, order_tables
from .steps import FaultInjector, simulated_faults
from .workflows import ORDER_PROJECTION, ORDER_SAGA

__all__ = ["app", "create_app"]


def create_app(*, schema: str = DEFAULT_ORDERS_SCHEMA, faults: FaultInjector = simulated_faults) -> SagaApp:
    """The OrderSaga (Standard) and OrderProjection (Express) with their actions, on ``schema``."""
    tables = order_tables(schema)
    app = SagaApp("orders")
    app.add(ORDER_SAGA)
    app.add(ORDER_PROJECTION)
    app.route("OrderPlaced", ORDER_SAGA)
    for event_type in ("OrderPlaced", "OrderConfirmed", "OrderCancelled"):
        app.route(event_type, ORDER_PROJECTION)

    def bind(fn: Callable[..., Any], **extra: Any) -> Callable[[StepContext], Any]:
        return functools.update_wrapper(functools.partial(fn, tables=tables, **extra), fn)

    saga_actions: dict[str, Callable[[StepContext], Any]] = {
        "reserve_inventory": bind(steps.reserve_inventory, faults=faults),
        "release_inventory": bind(steps.release_inventory),
        "charge_payment": bind(steps.charge_payment, faults=faults),
        "refund_payment": bind(steps.refund_payment, faults=faults),
        "create_shipment": bind(steps.create_shipment, faults=faults),
        "cancel_shipment": bind(steps.cancel_shipment),
        "confirm_order": bind(steps.confirm_order),
        "cancel_order": bind(steps.cancel_order),
    }
    for action, fn in saga_actions.items():
        app.action(ORDER_SAGA.name, action)(fn)
    app.action(ORDER_PROJECTION.name, "project_order")(bind(steps.project_order))
    app.action(ORDER_PROJECTION.name, "record_notification")(bind(steps.record_notification))

    @app.migration
    def order_tables_migration(conn: sa.Connection) -> None:
        migrate_orders(conn, schema=schema)

    return app


app = create_app()
