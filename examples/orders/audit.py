"""Reads the full outcome of a local run and checks the invariants of DESIGN.md §3.

Shared by ``saga-outbox demo`` and ``saga-outbox chaos``: events lost, duplicate side effects,
unfinished sagas, and how the sagas ended. Every figure is a SQL query over the outbox and
business tables or a Step Functions listing, never a counter the code under test keeps itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa

__all__ = ["Audit", "audit_run", "effects_left_behind"]


@dataclass(kw_only=True)
class Audit:
    orders: int
    outbox_rows: int
    outbox_published: int
    outbox_pending: int
    outbox_dead: int
    standard_executions: int
    express_executions: int
    sagas_completed: int
    sagas_compensated: int
    sagas_compensation_failed: int
    sagas_unfinished: int
    events_lost: int
    duplicate_side_effects: int
    duplicate_side_effect_detail: dict[str, int] = field(default_factory=dict)
    lost_detail: dict[str, int] = field(default_factory=dict)
    outbox_lag_ms_p50: float = 0.0
    outbox_lag_ms_max: float = 0.0

    @property
    def ok(self) -> bool:
        return self.events_lost == 0 and self.duplicate_side_effects == 0 and self.sagas_unfinished == 0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


# Each query counts business effects that happened more than once for one order/event.
_DUPLICATES = {
    "payments": "SELECT count(*) - count(DISTINCT order_id) FROM {o}.payments",
    "refunds": "SELECT count(*) - count(DISTINCT order_id) FROM {o}.payments WHERE refunded_at IS NOT NULL",
    "shipments": "SELECT count(*) - count(DISTINCT order_id) FROM {o}.shipments",
    "reservations": "SELECT count(*) - count(DISTINCT (order_id, sku)) FROM {o}.inventory_reservations",
    "notifications": "SELECT count(*) - count(DISTINCT event_id) FROM {o}.notifications",
    "order_outcome_events": (
        "SELECT count(*) - count(DISTINCT aggregate_key) FROM {s}.outbox"
        " WHERE event_type IN ('OrderConfirmed', 'OrderCancelled')"
    ),
}


# Each query counts effects of a CANCELLED order (its saga compensated) still in place. An order
# whose refund failed stays PENDING with a CompensationFailed execution, which names what is
# left to repair (and alarms), so it is not counted here.
_LEFT_BEHIND = {
    "payments_not_refunded": "{o}.payments e WHERE e.refunded_at IS NULL",
    "reservations_not_released": "{o}.inventory_reservations e WHERE e.released_at IS NULL",
    "shipments_of_cancelled_orders": "{o}.shipments e WHERE e.cancelled_at IS NULL",
}


def effects_left_behind(engine: sa.Engine, *, orders_schema: str) -> dict[str, int]:
    """Per kind of effect: effects of cancelled orders that their compensation did not undo."""
    o = f'"{orders_schema}"'
    with engine.connect() as c:
        return {
            name: int(
                c.exec_driver_sql(
                    f"SELECT count(*) FROM {rest.format(o=o)} AND EXISTS "
                    f"(SELECT 1 FROM {o}.orders x WHERE x.id = e.order_id AND x.status = 'CANCELLED')"
                ).scalar_one()
            )
            for name, rest in _LEFT_BEHIND.items()
        }


def audit_run(
    engine: sa.Engine,
    *,
    sfn_client: Any,
    state_machine_arns: dict[str, str],
    outbox_schema: str,
    orders_schema: str,
    saga: str = "OrderSaga",
    projection: str = "OrderProjection",
) -> Audit:
    s, o = f'"{outbox_schema}"', f'"{orders_schema}"'
    sagas = _executions(sfn_client, state_machine_arns[saga])
    express = _executions(sfn_client, state_machine_arns[projection])
    with engine.connect() as c:
        q = lambda sql: int(c.exec_driver_sql(sql.format(s=s, o=o)).scalar() or 0)  # noqa: E731
        orders = q("SELECT count(*) FROM {o}.orders")
        counts: dict[str, int] = dict(
            c.exec_driver_sql(f"SELECT state, count(*) FROM {s}.outbox GROUP BY state").all()
        )
        duplicates = {name: q(sql) for name, sql in _DUPLICATES.items()}
        # a saga that never started for a placed order, or an event the projection never saw
        lost = {
            "outbox_unpublished": int(counts.get("pending", 0)) + int(counts.get("dead", 0)),
            "orders_without_saga": orders - len({e["name"] for e in sagas}),
            "events_not_projected": q(
                "SELECT count(*) FROM {s}.outbox x WHERE x.aggregate_type = 'order' AND NOT EXISTS "
                "(SELECT 1 FROM {o}.order_view_events v WHERE v.event_id = x.event_id)"
            ),
        }
        statuses: dict[str, int] = dict(
            c.exec_driver_sql(f"SELECT status, count(*) FROM {o}.orders GROUP BY status").all()
        )
        lag = c.exec_driver_sql(
            f"SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), max(ms) FROM "
            f"(SELECT extract(epoch FROM published_at - created_at) * 1000 AS ms FROM {s}.outbox "
            f"WHERE published_at IS NOT NULL) t"
        ).one()
    saga_by_status: dict[str, int] = {}
    for e in sagas:
        saga_by_status[e["status"]] = saga_by_status.get(e["status"], 0) + 1
    failed = [e for e in sagas if e["status"] != "SUCCEEDED" and e["status"] != "RUNNING"]
    compensation_failed = sum(
        1
        for e in failed
        if sfn_client.describe_execution(executionArn=e["executionArn"]).get("error") == "CompensationFailed"
    )
    running = saga_by_status.get("RUNNING", 0)
    unexplained_failures = len(failed) - compensation_failed
    # Finished = completed, compensated, or failed *explicitly* with CompensationFailed (which
    # alarms); a saga still running, failed otherwise, never started, or an order left PENDING
    # without a CompensationFailed to explain it is unfinished.
    unfinished = max(
        running + unexplained_failures + lost["orders_without_saga"],
        int(statuses.get("PENDING", 0)) - compensation_failed,
    )
    return Audit(
        orders=orders,
        outbox_rows=sum(int(v) for v in counts.values()),
        outbox_published=int(counts.get("published", 0)),
        outbox_pending=int(counts.get("pending", 0)),
        outbox_dead=int(counts.get("dead", 0)),
        standard_executions=len(sagas),
        express_executions=len(express),
        sagas_completed=int(statuses.get("CONFIRMED", 0)),
        sagas_compensated=int(statuses.get("CANCELLED", 0)),
        sagas_compensation_failed=compensation_failed,
        sagas_unfinished=unfinished,
        events_lost=sum(lost.values()),
        duplicate_side_effects=sum(duplicates.values()),
        duplicate_side_effect_detail=duplicates,
        lost_detail=lost,
        outbox_lag_ms_p50=float(lag[0] or 0.0),
        outbox_lag_ms_max=float(lag[1] or 0.0),
    )


def _executions(sfn_client: Any, arn: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for page in sfn_client.get_paginator("list_executions").paginate(stateMachineArn=arn):
        out.extend(page["executions"])
    return out
