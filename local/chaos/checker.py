"""The chaos checker: a pure function of the recorded history and the database (plus the
Step Functions executions), never of counters the code under test keeps.

Invariants (DESIGN.md §3): no loss, no duplicate side effect, order per aggregate, every saga
finished (completed, compensated, or an explicit CompensationFailed) with its compensations in
reverse order of its completed steps.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa

from examples.orders.audit import Audit, audit_run
from saga_outbox.workflows import Workflow
from saga_outbox.workflows.naming import compensation_state_name

from .history import History

__all__ = ["ChaosReport", "check_run", "compensation_order_violation", "order_violations"]


@dataclass(kw_only=True)
class ChaosReport:
    events: int
    sagas: int
    outbox_rows: int
    kills: int
    kills_after_send: int
    relay_restarts: int
    lost: int
    duplicate_side_effects: int
    order_violations: int
    sagas_unfinished: int
    compensation_order_violations: int
    sagas_completed: int
    sagas_compensated: int
    sagas_compensation_failed: int
    late_resends: int
    late_resends_received: int
    lost_detail: dict[str, int] = field(default_factory=dict)
    duplicate_side_effect_detail: dict[str, int] = field(default_factory=dict)
    absorbed: dict[str, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    duration_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.duplicate_side_effects == 0
            and self.order_violations == 0
            and self.sagas_unfinished == 0
            and self.compensation_order_violations == 0
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def order_violations(
    receipts: list[tuple[str, str]], rank: dict[str, tuple[str, int]]
) -> tuple[int, int, list[str]]:
    """(violations, redeliveries ignored, examples) over receipts ``(group, event_id)`` in
    processing order; ``rank`` maps event_id to (group, position in commit order). A first
    receipt of an event whose position is below one already received in its group is a
    violation; a repeated receipt of an already-seen event is a redelivery and ignored."""
    seen: set[str] = set()
    highest: dict[str, int] = {}
    trail: dict[str, list[str]] = defaultdict(list)
    violations, redeliveries = 0, 0
    examples: list[str] = []
    for _group, event_id in receipts:
        position = rank.get(event_id)
        if position is None:
            continue
        group = position[0]
        trail[group].append(f"#{position[1]}" + ("(again)" if event_id in seen else ""))
        if event_id in seen:
            redeliveries += 1
            continue
        seen.add(event_id)
        top = highest.get(group, -1)
        if position[1] < top:
            violations += 1
            if len(examples) < 5:
                recent = " ".join(trail[group][-12:])
                examples.append(
                    f"{group}: event {event_id} (#{position[1]}) after #{top}; receipts: {recent}"
                )
        else:
            highest[group] = position[1]
    return violations, redeliveries, examples


def compensation_order_violation(entered: list[str], workflow: Workflow) -> str | None:
    """Check one execution's entered states: the compensations that ran must be, in order,
    the compensations of the completed steps in reverse (a prefix of it when the saga ended
    in CompensationFailed), each once. Returns a description of the violation or None."""
    wf = workflow
    steps = [s.name for s in wf.steps]
    compensable = {s.name: compensation_state_name(s.name) for s in wf.steps if s.compensation}
    comp_states = set(compensable.values())
    ran = [s for s in entered if s in comp_states]
    if (
        not ran
        and "CompensationFailed" not in entered
        and wf.on_compensated is not None
        and wf.on_compensated.name not in entered
    ):
        return None  # completed (or still running): nothing to undo
    # completed steps: action states followed by the next happy-path state
    happy = [*steps, *([wf.on_success.name] if wf.on_success else [])]
    completed: list[str] = []
    for i, name in enumerate(entered):
        if name in steps and i + 1 < len(entered):
            nxt = entered[i + 1]
            pos = happy.index(name)
            if pos + 1 < len(happy) and nxt == happy[pos + 1]:
                completed.append(name)
    if wf.on_success and wf.on_success.name in entered and steps[-1] not in completed:
        completed.append(steps[-1])
    expected = [compensable[s] for s in reversed(completed) if s in compensable]
    if len(ran) != len(set(ran)):
        return f"a compensation ran twice: {ran}"
    if "CompensationFailed" in entered:
        if ran != expected[: len(ran)]:
            return f"compensations {ran} are not a prefix of {expected}"
        return None
    if ran != expected:
        return f"compensations {ran}, expected {expected}"
    return None


def _entered_states(sfn: Any, arn: str) -> list[str]:
    names: list[str] = []
    kwargs: dict[str, Any] = {"executionArn": arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        for e in page.get("events", []):
            if e.get("type", "").endswith("StateEntered"):
                names.append(e["stateEnteredEventDetails"]["name"])
        token = page.get("nextToken")
        if not token:
            return names
        kwargs["nextToken"] = token


def check_run(
    history: History,
    engine: sa.Engine,
    *,
    sfn_client: Any,
    state_machine_arns: dict[str, str],
    outbox_schema: str,
    orders_schema: str,
    plain_event_type: str,
    saga: Workflow,
) -> ChaosReport:
    audit: Audit = audit_run(
        engine,
        sfn_client=sfn_client,
        state_machine_arns=state_machine_arns,
        outbox_schema=outbox_schema,
        orders_schema=orders_schema,
    )
    with engine.connect() as c:
        rows = c.exec_driver_sql(
            f"SELECT event_id::text, aggregate_type || ':' || aggregate_key, event_type, state, "
            f"row_number() OVER (PARTITION BY aggregate_type, aggregate_key ORDER BY id) "
            f'FROM "{outbox_schema}".outbox'
        ).all()
    rank = {r[0]: (r[1], int(r[4])) for r in rows}
    types = {r[0]: r[2] for r in rows}
    received = {r.event_id for r in history.receipts}
    never_received = [r[0] for r in rows if r[0] not in received]
    events = sum(1 for r in rows if r[2] == plain_event_type)

    violations, redeliveries, order_examples = order_violations(
        [(r.group_id, r.event_id) for r in history.receipts], rank
    )

    # late re-sends: a dedup id enqueued again after the window; were they delivered?
    late = [s for s in history.sends if s.outcome == "late_enqueued"]
    late_ids = {s.event_id for s in late}
    receipts_per_event: dict[str, int] = defaultdict(int)
    for r in history.receipts:
        receipts_per_event[r.event_id] += 1
    late_received = sum(1 for e in late_ids if receipts_per_event.get(e, 0) > 1)

    # saga compensation order, from the execution histories
    comp_violations = 0
    comp_examples: list[str] = []
    saga_arn = state_machine_arns[saga.name]
    for page in sfn_client.get_paginator("list_executions").paginate(stateMachineArn=saga_arn):
        for e in page["executions"]:
            problem = compensation_order_violation(_entered_states(sfn_client, e["executionArn"]), saga)
            if problem:
                comp_violations += 1
                if len(comp_examples) < 5:
                    comp_examples.append(f"{e['name']}: {problem}")

    duplicate_order_placed = sum(
        n - 1 for e, n in receipts_per_event.items() if n > 1 and types.get(e) == "OrderPlaced"
    )
    order_events = sum(1 for r in rows if r[1].startswith("order:"))
    absorbed = {
        "sqs_dedup_window": sum(1 for s in history.sends if s.outcome == "dedup_dropped"),
        "consumer_redeliveries": redeliveries,
        "execution_name": duplicate_order_placed,
        "step_idempotency": history.faults.get("step_reinvocations", 0),
        "express_unique_keys": max(0, audit.express_executions - order_events),
    }
    lost_detail = {
        "never_received": len(never_received),
        **audit.lost_detail,
    }
    lost = (
        len(never_received)
        + audit.lost_detail.get("orders_without_saga", 0)
        + audit.lost_detail.get("events_not_projected", 0)
    )
    kills = [k for k in history.kills if k.get("signal") == "SIGKILL"]
    return ChaosReport(
        events=events,
        sagas=audit.orders,
        outbox_rows=len(rows),
        kills=len(kills),
        kills_after_send=sum(1 for k in kills if k.get("how") == "after_send"),
        relay_restarts=len(history.relay_exits),
        lost=lost,
        duplicate_side_effects=audit.duplicate_side_effects,
        order_violations=violations,
        sagas_unfinished=audit.sagas_unfinished,
        compensation_order_violations=comp_violations,
        sagas_completed=audit.sagas_completed,
        sagas_compensated=audit.sagas_compensated,
        sagas_compensation_failed=audit.sagas_compensation_failed,
        late_resends=len(late),
        late_resends_received=late_received,
        lost_detail=lost_detail,
        duplicate_side_effect_detail=audit.duplicate_side_effect_detail,
        absorbed=absorbed,
        faults=dict(sorted(history.faults.items())),
        examples={
            "lost": never_received[:5],
            "order": order_examples,
            "compensation": comp_examples,
        },
    )
