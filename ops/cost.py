"""What a deployment costs per month, from what the package knows exactly.

Exact: the state transitions and Lambda invocations per execution (walked off the compiled
definition's happy path, so a saga with more steps costs more), which workflows each event type
starts (the app's routes), the SQS requests per event (the relay's SendMessageBatch of up to 10
entries, each 64 KB chunk one request; the dispatcher's receive + delete per batch of 10).
Assumed, and printed with the estimate: Lambda durations and memory, the message size, and a
fully batched relay (at low volume batches are smaller, so SQS costs a little more). Not included:
Aurora, RDS Proxy, NAT, CloudWatch, KMS and data transfer (fixed or usage-specific).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from saga_outbox._app import SagaApp
from saga_outbox._errors import Error
from saga_outbox.workflows import WorkflowKind, compile_definition
from saga_outbox.workflows.definition import Workflow

from .prices import PRICES, PriceTable

__all__ = ["CostAssumptions", "CostEstimate", "CostInputError", "estimate_cost", "happy_path"]

SECONDS_PER_MONTH = 30 * 24 * 3600
_PLACEHOLDER_ARN = "arn:aws:lambda:us-east-1:000000000000:function:steps"


class CostInputError(Error, ValueError):
    """A rate, share or assumption the estimate cannot use; the message names it."""


@dataclass(frozen=True, kw_only=True)
class CostAssumptions:
    """What the estimate cannot know; measure yours (``saga-outbox local run`` prints durations)."""

    step_ms: float = 60.0
    step_memory_mb: int = 512
    dispatcher_ms_per_batch: float = 250.0
    dispatcher_memory_mb: int = 512
    batch_size: int = 10
    message_kb: float = 1.0
    #: Express run time on top of its Lambda tasks (state handling), rounded up to 100 ms after
    express_overhead_ms: float = 20.0
    #: the scheduled relay function: one invocation a minute, busy this long
    relay_seconds_per_minute: float = 50.0
    relay_memory_mb: int = 512
    #: the dispatcher's event source long-polls an empty queue too (5 pollers, 20 s waits)
    idle_receives_per_month: float = 5 * 3 * 60 * 24 * 30

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise CostInputError(f"assumption {name} must be a non-negative number, got {value!r}")
        if not 1 <= self.batch_size <= 10:
            raise CostInputError(f"batch_size must be 1..10 (SQS batch limit), got {self.batch_size!r}")


@dataclass(frozen=True, kw_only=True)
class WorkflowCost:
    workflow: str
    kind: str
    executions_per_month: float
    transitions_per_execution: int
    tasks_per_execution: int
    usd_per_month: float


@dataclass(frozen=True, kw_only=True)
class CostEstimate:
    events_per_second: float
    mix: Mapping[str, float]
    components: Mapping[str, float]
    workflows: tuple[WorkflowCost, ...]
    assumptions: CostAssumptions
    prices: PriceTable
    not_included: tuple[str, ...] = field(
        default=("Aurora", "RDS Proxy", "NAT gateways", "CloudWatch logs and metrics", "KMS", "data transfer")
    )

    @property
    def total(self) -> float:
        return sum(self.components.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "events_per_second": self.events_per_second,
            "mix": dict(self.mix),
            "usd_per_month": {k: round(v, 2) for k, v in self.components.items()},
            "total_usd_per_month": round(self.total, 2),
            "workflows": [asdict(w) for w in self.workflows],
            "assumptions": asdict(self.assumptions),
            "prices": {"region": self.prices.region, "as_of": self.prices.as_of},
            "not_included": list(self.not_included),
        }


def happy_path(workflow: Workflow) -> list[dict[str, Any]]:
    """The states a run that succeeds at every step enters, in order (from the compiled ASL)."""
    definition = compile_definition(workflow, function_arns={workflow.function: _PLACEHOLDER_ARN})
    states, name = definition["States"], definition["StartAt"]
    path: list[dict[str, Any]] = []
    while name is not None:
        state = states[name]
        path.append({"name": name, **state})
        if state.get("Type") in ("Succeed", "Fail") or state.get("End"):
            break
        name = state.get("Next") or (state.get("Default") if state.get("Type") == "Choice" else None)
    return path


def _mix(app: SagaApp, mix: Mapping[str, float] | None) -> dict[str, float]:
    routed = sorted({r.event_type for r in app.routes})
    if not mix:
        if not routed:
            raise CostInputError(f"app {app.name!r} routes no event type; nothing to estimate")
        return {e: 1 / len(routed) for e in routed}
    for event_type, share in mix.items():
        if not isinstance(share, int | float) or isinstance(share, bool) or share < 0:
            raise CostInputError(f"share of {event_type!r} must be a non-negative number, got {share!r}")
    total = sum(mix.values())
    if total <= 0:
        raise CostInputError(f"the mix has no positive share: {dict(mix)!r}")
    unknown = sorted(set(mix) - set(routed))
    if unknown:
        raise CostInputError(
            f"event types {unknown} are routed to no workflow of {app.name!r}; routed: {routed}"
        )
    return {e: s / total for e, s in mix.items()}


def estimate_cost(
    app: SagaApp,
    *,
    events_per_second: float,
    mix: Mapping[str, float] | None = None,
    assumptions: CostAssumptions | None = None,
    prices: PriceTable = PRICES,
) -> CostEstimate:
    """The monthly bill per component for ``events_per_second`` outbox events, split by ``mix``
    (event type -> share; default: equal shares of the routed event types)."""
    if (
        not isinstance(events_per_second, int | float)
        or isinstance(events_per_second, bool)
        or events_per_second < 0
    ):
        raise CostInputError(f"--events-per-second must be a non-negative number, got {events_per_second!r}")
    a = assumptions or CostAssumptions()
    shares = _mix(app, mix)
    events = events_per_second * SECONDS_PER_MONTH
    batches = events / a.batch_size
    chunks = max(1, math.ceil(a.message_kb * a.batch_size / 64))  # one SendMessageBatch payload
    sqs_requests = batches * chunks + 2 * batches + a.idle_receives_per_month

    standard = express = steps_requests = steps_gb_s = 0.0
    per_workflow: dict[str, list[float]] = {}
    for event_type, share in shares.items():
        for workflow in app.workflows_for(event_type):
            runs = events * share
            per_workflow.setdefault(workflow.name, [0.0])[0] += runs
    workflows = []
    for name, (runs,) in per_workflow.items():
        workflow = app.get_workflow(name)
        path = happy_path(workflow)
        tasks = sum(1 for s in path if s.get("Type") == "Task")
        steps_requests += runs * tasks
        steps_gb_s += runs * tasks * a.step_ms / 1000 * a.step_memory_mb / 1024
        if workflow.kind is WorkflowKind.STANDARD:
            usd = runs * len(path) * prices.sfn_standard_transition
            standard += usd
        else:
            billed_s = math.ceil((tasks * a.step_ms + a.express_overhead_ms) / 100) / 10
            usd = runs * (prices.sfn_express_request + billed_s * 64 / 1024 * prices.sfn_express_gb_second)
            express += usd
        workflows.append(
            WorkflowCost(
                workflow=name,
                kind=str(workflow.kind),
                executions_per_month=runs,
                transitions_per_execution=len(path),
                tasks_per_execution=tasks,
                usd_per_month=usd,
            )
        )
    relay_invocations = 60 * 24 * 30
    gb_s = prices.lambda_arm_gb_second
    dispatcher_gb_s = batches * a.dispatcher_ms_per_batch / 1000 * a.dispatcher_memory_mb / 1024
    relay_gb_s = relay_invocations * a.relay_seconds_per_minute * a.relay_memory_mb / 1024
    components = {
        "sqs": sqs_requests * prices.sqs_fifo_request,
        "step_functions_standard": standard,
        "step_functions_express": express,
        "lambda_steps": steps_requests * prices.lambda_request + steps_gb_s * gb_s,
        "lambda_dispatcher": batches * prices.lambda_request + dispatcher_gb_s * gb_s,
        "lambda_relay": relay_invocations * prices.lambda_request + relay_gb_s * gb_s,
    }
    return CostEstimate(
        events_per_second=float(events_per_second),
        mix=shares,
        components=components,
        workflows=tuple(workflows),
        assumptions=a,
        prices=prices,
    )
