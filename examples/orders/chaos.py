"""The orders app's chaos scenario: ``saga-outbox chaos --app examples.orders.app:app
--scenario examples.orders.chaos:scenario``.

It tells the domain-free harness the two things only this domain knows: how an order is
placed (the order row and its ``OrderPlaced`` event in one transaction, with payment, shipment
and refund failures drawn from the harness's seeded rng) and how to audit the order tables
(duplicate payments, refunds, shipments, reservations, notifications; effects a cancelled order
kept; orders that never got a saga). Every run gets its own order tables.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from saga_outbox import AppError, SagaApp
from saga_outbox.local.chaos import DomainAudit

from .app import create_app
from .audit import audit_run, effects_left_behind
from .commands import place_order
from .demo import simulated_failures
from .workflows import ORDER_SAGA

__all__ = ["OrdersScenario", "scenario"]


class OrdersScenario:
    """One chaos run's orders on ``orders_schema`` (a :class:`~saga_outbox.local.chaos.ChaosScenario`)."""

    saga = ORDER_SAGA.name

    def __init__(
        self, *, orders_schema: str, fail_payment: float, fail_shipping: float, fail_refund: float
    ) -> None:
        self.orders_schema = orders_schema
        self.app: SagaApp = create_app(schema=orders_schema)
        self.rates = {
            "fail_payment": fail_payment,
            "fail_shipping": fail_shipping,
            "fail_refund": fail_refund,
        }
        self.placed = 0

    def start(self, conn: sa.Connection, *, rng: random.Random, outbox_schema: str) -> None:
        simulate = simulated_failures(rng, **self.rates)
        place_order(
            conn,
            customer_id=f"customer-{self.placed % 37}",
            items=[{"sku": f"sku-{rng.randrange(20)}", "qty": rng.randint(1, 3)}],
            amount_cents=rng.randint(500, 50_000),
            simulate=simulate or None,
            outbox_schema=outbox_schema,
            orders_schema=self.orders_schema,
        )
        self.placed += 1

    def audit(
        self,
        engine: sa.Engine,
        *,
        sfn_client: Any,
        state_machine_arns: Mapping[str, str],
        outbox_schema: str,
    ) -> DomainAudit:
        audit = audit_run(
            engine,
            sfn_client=sfn_client,
            state_machine_arns=dict(state_machine_arns),
            outbox_schema=outbox_schema,
            orders_schema=self.orders_schema,
        )
        lost = {k: audit.lost_detail[k] for k in ("orders_without_saga", "events_not_projected")}
        return DomainAudit(
            duplicate_side_effects=audit.duplicate_side_effect_detail,
            effects_left_behind=effects_left_behind(engine, orders_schema=self.orders_schema),
            lost=lost,
            unfinished=audit.sagas_unfinished,
        )


def scenario(
    app: SagaApp,
    *,
    run_id: str,
    fail_payment: float = 0.1,
    fail_shipping: float = 0.05,
    fail_refund: float = 0.3,
) -> OrdersScenario:
    """The scenario factory ``--scenario`` names: 10% of payments declined, 5% of shipments
    failed and 30% of those refunds failed too (CompensationFailed). Other rates:
    ``functools.partial(scenario, fail_payment=...)``."""
    if app.name != "orders" or ORDER_SAGA.name not in {w.name for w in app.workflows}:
        raise AppError(f"examples.orders.chaos:scenario runs the orders app, not {app!r}")
    return OrdersScenario(
        orders_schema=f"chaos_orders_{run_id}",
        fail_payment=fail_payment,
        fail_shipping=fail_shipping,
        fail_refund=fail_refund,
    )
