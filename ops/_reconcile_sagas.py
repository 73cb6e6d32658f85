"""What a ``CompensationFailed`` saga undid and what it left in place, read off its history.

The inspector already pairs each compensation state with the step it undoes (from the compiled
payloads, not from names); this turns its report into the operator's repair list. A step counts
as "may have taken effect" when it succeeded, or failed with an unknown outcome (timeout, crash):
only a declared rejection proves nothing happened (the rule the compiled saga itself follows).
"""

from __future__ import annotations

import json
from typing import Any

from saga_outbox.inspector import ExecutionInspector
from saga_outbox.inspector.report import ExecutionReport, Outcome, StateReport
from saga_outbox.workflows.definition import Workflow
from saga_outbox.workflows.naming import compensation_state_name
from saga_outbox.workflows.outcomes import is_rejection

from . import _reconcile_findings as f

__all__ = ["compensation_report", "undo_summary"]


def _state(report: ExecutionReport, name: str) -> StateReport | None:
    try:
        return report.state(name)
    except KeyError:
        return None


def _failed_states(report: ExecutionReport) -> list[dict[str, Any]]:
    """The Fail state's cause is ``{"<state>": {"Error": ..., "Cause": ...}}`` (the compiler's
    ``$.failed``); a history without it (an older definition) falls back to the failed tasks."""
    try:
        cause = json.loads(report.cause or "")
    except ValueError:
        cause = None
    if isinstance(cause, dict) and cause and all(isinstance(v, dict) for v in cause.values()):
        return [
            {"state": k, "error": v.get("Error"), "cause": f.short_cause(v.get("Cause"))}
            for k, v in cause.items()
        ]
    return [
        {"state": s.name, "error": s.last_run.error, "cause": f.short_cause(s.last_run.cause)}
        for s in report.states
        if s.type == "Task" and s.outcome is Outcome.FAILED and s.last_run is not None
    ]


def undo_summary(workflow: Workflow, report: ExecutionReport) -> tuple[list[str], list[dict[str, Any]]]:
    """(steps undone, [{step, reason}] of steps that may have taken effect and were not)."""
    undone: list[str] = []
    not_undone: list[dict[str, Any]] = []
    for step in workflow.steps:
        state = _state(report, step.name)
        if state is None or state.outcome in (Outcome.NOT_REACHED, Outcome.RUNNING):
            continue
        if state.outcome is Outcome.COMPENSATED:
            undone.append(step.name)
            continue
        last = state.last_run
        if state.outcome is Outcome.FAILED and last is not None and is_rejection(step, last.error or ""):
            continue  # declared "nothing happened": nothing to undo
        if step.compensation is None:
            not_undone.append({"step": step.name, "reason": "has no compensation (repair by hand)"})
            continue
        comp = _state(report, compensation_state_name(step.name))
        if comp is not None and comp.outcome is Outcome.FAILED and comp.last_run is not None:
            reason = f"{comp.name} failed: {comp.last_run.error or 'unknown error'}"
        elif comp is not None and comp.outcome is Outcome.SUCCEEDED:
            # a failed step's compensation ran: the step is not "succeeded" to be marked undone
            undone.append(step.name)
            continue
        else:
            reason = f"{compensation_state_name(step.name)} never ran (the chain stopped at the failure)"
        not_undone.append({"step": step.name, "reason": reason})
    return undone, not_undone


def compensation_report(sfn_client: Any, workflow: Workflow, execution_arn: str) -> f.CompensationFailedSaga:
    report = ExecutionInspector(sfn_client).describe_execution(execution_arn)
    undone, not_undone = undo_summary(workflow, report)
    try:
        event_id = json.loads(report.input or "")["event_id"]
    except (ValueError, KeyError, TypeError):
        event_id = None
    return f.CompensationFailedSaga(
        workflow=workflow.name,
        execution_name=report.name,
        execution_arn=report.execution_arn,
        event_id=event_id,
        started_at=report.start_date,
        stopped_at=report.stop_date,
        failed=tuple(_failed_states(report)),
        undone=tuple(undone),
        not_undone=tuple(not_undone),
    )
