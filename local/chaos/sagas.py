"""Domain-free saga checks, computed from the app's compiled workflows and the executions'
histories (never from state names guessed per app): how every execution of every Standard
workflow ended, whether its compensations ran in reverse order of its completed compensable
steps, and how many Express executions repeated an event.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from saga_outbox._app import SagaApp
from saga_outbox.workflows import Step, Workflow, WorkflowKind
from saga_outbox.workflows.compiler import COMPENSATION_FAILED, saga_outcome
from saga_outbox.workflows.naming import compensation_state_name, execution_name, failure_choice_name
from saga_outbox.workflows.outcomes import is_rejection, saga_sequence

__all__ = ["SagaFigures", "compensation_order_violation", "saga_figures", "sagas_not_started"]


def compensation_order_violation(
    entered: list[str], workflow: Workflow, *, failure_error: str | None = None
) -> str | None:
    """Check one execution's entered states: the compensations that ran must be, in order,
    the failing step's own compensation when its outcome was unknown, then the compensations
    of the completed steps in reverse (a prefix of it when the saga ended in
    CompensationFailed), each once. Returns a description of the violation or None.

    ``failure_error`` is the error the failing step ended with (from the history): with it,
    whether the step itself must be undone is decided by :func:`is_rejection`, the rule the
    compiler emits; without it both are accepted, the own compensation only first.
    The outcome is read off the compiled end states (:func:`saga_outcome`), so a workflow
    without an ``on_compensated`` hook is judged like one with it."""
    wf = workflow
    steps = [s.name for s in wf.steps]
    compensable = {s.name: compensation_state_name(s.name) for s in wf.steps if s.compensation}
    comp_states = set(compensable.values())
    ran = [s for s in entered if s in comp_states]
    if not ran and saga_outcome(entered) in (None, "completed"):
        return None  # completed (or still running): nothing to undo
    # completed steps: action states followed by the next happy-path state
    happy = [s.name for s in saga_sequence(wf)]
    completed: list[str] = []
    failing: Step | None = None
    for i, name in enumerate(entered):
        if name in happy and i + 1 < len(entered):
            nxt = entered[i + 1]
            pos = happy.index(name)
            if pos + 1 < len(happy) and nxt == happy[pos + 1] and name in steps:
                completed.append(name)
            elif nxt == failure_choice_name(name):
                failing = saga_sequence(wf)[pos]
    if wf.on_success and wf.on_success.name in entered and steps[-1] not in completed:
        completed.append(steps[-1])
    expected = [compensable[s] for s in reversed(completed) if s in compensable]
    if len(ran) != len(set(ran)):
        return f"a compensation ran twice: {ran}"
    candidates = [expected]
    if failing is not None and failing.name in compensable:
        own = [compensable[failing.name], *expected]
        if failure_error is None:
            candidates.append(own)
        elif not is_rejection(failing, failure_error):
            candidates = [own]  # an unknown outcome: the failing step may have committed
    if COMPENSATION_FAILED in entered:
        if not any(ran == c[: len(ran)] for c in candidates):
            return f"compensations {ran} are not a prefix of {' or '.join(map(str, candidates))}"
        return None
    if ran not in candidates:
        return f"compensations {ran}, expected {' or '.join(map(str, candidates))}"
    return None


@dataclass(kw_only=True)
class SagaFigures:
    standard_executions: int = 0
    completed: int = 0
    compensated: int = 0
    compensation_failed: int = 0
    #: still running, or ended without reaching one of the three outcomes (failed otherwise)
    unfinished: int = 0
    compensation_order_violations: int = 0
    express_executions: int = 0
    #: execution names of the Standard executions that exist, per workflow
    names: dict[str, set[str]] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)


def saga_figures(app: SagaApp, sfn_client: Any, state_machine_arns: dict[str, str]) -> SagaFigures:
    """Read every execution of every workflow of ``app`` and check the Standard ones."""
    out = SagaFigures()
    for wf in app.workflows:
        executions = _executions(sfn_client, state_machine_arns[wf.name])
        if wf.kind is not WorkflowKind.STANDARD:
            out.express_executions += len(executions)
            continue
        out.names[wf.name] = {e["name"] for e in executions}
        out.standard_executions += len(executions)
        for e in executions:
            entered, failure_error = _entered_states(sfn_client, e["executionArn"])
            outcome = saga_outcome(entered) if e["status"] != "RUNNING" else None
            if outcome == "completed" and e["status"] == "SUCCEEDED":
                out.completed += 1
            elif outcome == "compensated" and e["status"] == "SUCCEEDED":
                out.compensated += 1
            elif outcome == "compensation_failed":
                out.compensation_failed += 1
            else:
                out.unfinished += 1
                _example(out, f"{wf.name}/{e['name']}: {e['status']} after {entered[-3:]}")
            problem = compensation_order_violation(entered, wf, failure_error=failure_error)
            if problem:
                out.compensation_order_violations += 1
                _example(out, f"{wf.name}/{e['name']}: {problem}")
    return out


def sagas_not_started(app: SagaApp, figures: SagaFigures, received: Iterable[tuple[str, str]]) -> list[str]:
    """Events the dispatcher processed (``(event_id, event_type)``) for which a routed Standard
    workflow has no execution: the dispatcher acknowledged an event without starting its saga."""
    missing: list[str] = []
    for event_id, event_type in received:
        for wf in app.workflows_for(event_type):
            name = execution_name(wf.name, event_id)
            if wf.kind is WorkflowKind.STANDARD and name not in figures.names.get(wf.name, set()):
                missing.append(f"{wf.name}/{event_id}")
    return missing


def _example(out: SagaFigures, text: str) -> None:
    if len(out.examples) < 5:
        out.examples.append(text)


def _executions(sfn_client: Any, arn: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for page in sfn_client.get_paginator("list_executions").paginate(stateMachineArn=arn):
        out.extend(page["executions"])
    return out


def _entered_states(sfn: Any, arn: str) -> tuple[list[str], str | None]:
    """Names of the states entered, and the error a failing step ended with (the ``error``
    its failure Choice received), if one failed."""
    names: list[str] = []
    failure_error: str | None = None
    kwargs: dict[str, Any] = {"executionArn": arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        for e in page.get("events", []):
            if e.get("type", "").endswith("StateEntered"):
                details = e["stateEnteredEventDetails"]
                names.append(details["name"])
                if e["type"] == "ChoiceStateEntered" and failure_error is None:
                    failure_error = _error_name(details.get("input"))
        token = page.get("nextToken")
        if not token:
            return names, failure_error
        kwargs["nextToken"] = token


def _error_name(state_input: str | None) -> str | None:
    try:
        error = json.loads(state_input or "{}").get("error")
    except (ValueError, AttributeError):
        return None
    return error.get("Error") if isinstance(error, dict) else None
