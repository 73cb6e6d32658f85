"""The chaos checker: a pure function of the recorded history and the database (plus the
Step Functions executions), never of counters the code under test keeps.

Invariants (DESIGN.md §3): no loss, no duplicate side effect, order per aggregate, every saga
finished (completed, compensated, or an explicit CompensationFailed) with its compensations in
reverse order of its completed steps. Everything but the business side effects is checked for
any app; those come from the app's :class:`~saga_outbox.local.chaos.scenario.ChaosScenario`
(a :class:`DomainAudit`), and without one the report lists them under ``checks_skipped``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa

from saga_outbox._app import SagaApp
from saga_outbox.workflows import WorkflowKind

from .history import History
from .sagas import compensation_order_violation, saga_figures, sagas_not_started
from .scenario import DOMAIN_CHECKS, DomainAudit

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
    #: None when the app supplied no scenario (the check is listed in ``checks_skipped``)
    duplicate_side_effects: int | None
    order_violations: int
    sagas_unfinished: int
    compensation_order_violations: int
    sagas_completed: int
    sagas_compensated: int
    sagas_compensation_failed: int
    late_resends: int
    late_resends_received: int
    #: None when not checked (no scenario, or the scenario does not check it)
    effects_left_behind: int | None = None
    #: outbox rows dead at the end: with request-level failures (outages, credentials,
    #: throttling) spending no attempt, none may die in a run whose entries fail only at random
    dead_rows: int = 0
    lost_detail: dict[str, int] = field(default_factory=dict)
    duplicate_side_effect_detail: dict[str, int] = field(default_factory=dict)
    effects_left_behind_detail: dict[str, int] = field(default_factory=dict)
    absorbed: dict[str, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    #: check name -> what it would have checked, for the domain checks this run could not run
    checks_skipped: dict[str, str] = field(default_factory=dict)
    #: the Standard workflows whose every execution was checked
    sagas_checked: list[str] = field(default_factory=list)
    #: what the reconciler pass before the checks found and repaired (``reconcile.reconcile_pass``);
    #: the saga checks count after its repairs
    reconciler: dict[str, Any] = field(default_factory=dict)
    app: str = ""
    scenario: str | None = None
    duration_seconds: float = 0.0
    #: --destination: that destination's own figures and which invariants apply to it
    destination: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """Every invariant that was checked held (a skipped check is reported, not passed)."""
        return (
            self.lost == 0
            and not self.duplicate_side_effects
            and not self.effects_left_behind
            and self.dead_rows == 0
            and self.order_violations == 0
            and self.sagas_unfinished == 0
            and self.compensation_order_violations == 0
            and (self.destination is None or bool(self.destination["ok"]))
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


def check_run(
    history: History,
    engine: sa.Engine,
    *,
    app: SagaApp,
    sfn_client: Any,
    state_machine_arns: dict[str, str],
    outbox_schema: str,
    plain_event_type: str,
    domain: DomainAudit | None = None,
    extra_rows: list[tuple[str, str, str, str, int]] | None = None,
    reconciler: dict[str, Any] | None = None,
) -> ChaosReport:
    """Check a settled run. ``domain`` is the scenario's audit of the app's tables (None: the
    app supplied no scenario; the domain checks are reported as skipped). ``extra_rows`` are
    events of another outbox (the DynamoDB one) as ``(event_id, group, type, state, rank)``;
    ``reconciler`` is what the reconciler pass before it repaired, reported as given."""
    with engine.connect() as c:
        rows = [
            *c.exec_driver_sql(
                f"SELECT event_id::text, aggregate_type || ':' || aggregate_key, event_type, state, "
                f"row_number() OVER (PARTITION BY aggregate_type, aggregate_key ORDER BY id) "
                # the SQS rows: a second destination (--destination) is checked on its own
                f"FROM \"{outbox_schema}\".outbox WHERE destination = 'sqs'"
            ).all(),
            *(extra_rows or []),
        ]
    rank = {r[0]: (r[1], int(r[4])) for r in rows}
    types = {r[0]: r[2] for r in rows}
    received = {r.event_id for r in history.receipts}
    never_received = [r[0] for r in rows if r[0] not in received]
    events = sum(1 for r in rows if r[2] == plain_event_type)
    unpublished = sum(1 for r in rows if r[3] in ("pending", "dead"))
    dead = [r[0] for r in rows if r[3] == "dead"]

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

    # the sagas, for every Standard workflow of the app, from the compiled definitions
    figures = saga_figures(app, sfn_client, state_machine_arns)
    standard_routes = {
        t: [w.name for w in app.workflows_for(t) if w.kind is WorkflowKind.STANDARD]
        for t in set(types.values())
    }
    express_routes = {
        t: sum(1 for w in app.workflows_for(t) if w.kind is not WorkflowKind.STANDARD)
        for t in set(types.values())
    }
    not_started = sagas_not_started(app, figures, ((e, types[e]) for e in received if e in types))
    repeated_saga_events = sum(
        n - 1 for e, n in receipts_per_event.items() if n > 1 and standard_routes.get(types.get(e, ""))
    )
    absorbed = {
        "sqs_dedup_window": sum(1 for s in history.sends if s.outcome == "dedup_dropped"),
        "consumer_redeliveries": redeliveries,
        # a repeated saga-starting event met the execution it had started (same name)
        "execution_name": repeated_saga_events,
        "step_idempotency": history.faults.get("step_reinvocations", 0),
        # Express names are not deduplicated: extra executions beyond one per routed event
        "express_unique_keys": max(
            0, figures.express_executions - sum(express_routes[t] for t in types.values())
        ),
    }
    lost_detail = {
        "never_received": len(never_received),
        "outbox_unpublished": unpublished,  # shown, not counted: such rows are never_received too
        "sagas_not_started": len(not_started),
        **(dict(domain.lost) if domain else {}),
    }
    lost = len(never_received) + len(not_started) + (sum(domain.lost.values()) if domain else 0)
    skipped = dict(DOMAIN_CHECKS) if domain is None else {}
    if domain is not None and domain.effects_left_behind is None:
        skipped["effects_left_behind"] = DOMAIN_CHECKS["effects_left_behind"]
    left_behind = (
        dict(domain.effects_left_behind) if domain and domain.effects_left_behind is not None else {}
    )
    kills = [k for k in history.kills if k.get("signal") == "SIGKILL"]
    return ChaosReport(
        events=events,
        sagas=sum(1 for t in types.values() if standard_routes[t]),
        outbox_rows=len(rows),
        kills=len(kills),
        kills_after_send=sum(1 for k in kills if k.get("how") == "after_send"),
        relay_restarts=len(history.relay_exits),
        lost=lost,
        duplicate_side_effects=sum(domain.duplicate_side_effects.values()) if domain else None,
        effects_left_behind=sum(left_behind.values()) if "effects_left_behind" not in skipped else None,
        dead_rows=len(dead),
        order_violations=violations,
        sagas_unfinished=max(figures.unfinished, domain.unfinished if domain else 0),
        compensation_order_violations=figures.compensation_order_violations,
        sagas_completed=figures.completed,
        sagas_compensated=figures.compensated,
        sagas_compensation_failed=figures.compensation_failed,
        late_resends=len(late),
        late_resends_received=late_received,
        lost_detail=lost_detail,
        duplicate_side_effect_detail=dict(domain.duplicate_side_effects) if domain else {},
        effects_left_behind_detail=left_behind,
        absorbed=absorbed,
        faults=dict(sorted(history.faults.items())),
        examples={
            "lost": [*never_received[:5], *not_started[:5]],
            "order": order_examples,
            "compensation": figures.examples,
            "dead": dead[:5],
        },
        checks_skipped=skipped,
        sagas_checked=sorted(figures.names),
        reconciler=dict(reconciler or {}),
        app=app.name,
    )
