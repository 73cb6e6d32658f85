"""Compile a :class:`~saga_outbox.workflows.definition.Workflow` into an Amazon States Language definition.

The same dict is deployed by CDK and executed locally by moto. Layout of a Standard saga with
steps S1..Sn (compensations C1..Cn where declared)::

    Start (Pass: {"event": $, "results": {}})
      -> S1 -> ... -> Sn -> [on_success] -> MarkCompleted (status=completed) -> SagaCompleted
    Sk fails after its retries (Catch States.ALL, error at $.error; so does on_success)
      -> Compensate S(k-1) -> ... -> Compensate S1   (steps without compensation are skipped)
      -> [on_compensated] -> MarkCompensated (status=compensated) -> SagaCompensated
    a compensation or on_compensated fails after its retries
      -> CompensationFailed (Fail, Error "CompensationFailed")

Express: the same happy path without Catch or compensations.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from saga_outbox.workflows.definition import Integration, Step, Workflow, WorkflowKind
from saga_outbox.workflows.exceptions import CompilationError
from saga_outbox.workflows.naming import compensation_state_name

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
START_STATE = "Start"
MARK_COMPLETED = "MarkCompleted"
COMPLETED_STATE = "SagaCompleted"
MARK_COMPENSATED = "MarkCompensated"
COMPENSATED_STATE = "SagaCompensated"
COMPENSATION_FAILED = "CompensationFailed"
COMPENSATION_FAILED_CAUSE = (
    "A compensation failed after its retries; the saga is partially undone and needs manual repair."
)


def compile_definition(workflow: Workflow, *, function_arns: Mapping[str, str]) -> dict[str, Any]:
    """ASL definition of ``workflow``; ``function_arns`` maps ``workflow.function`` to a Lambda ARN."""
    try:
        function_arn = function_arns[workflow.function]
    except KeyError:
        raise CompilationError(
            f"no function ARN for {workflow.function!r} (workflow {workflow.name!r}); "
            f"got keys {sorted(function_arns)}"
        ) from None
    if not isinstance(function_arn, str) or not function_arn:
        raise CompilationError(f"function ARN for {workflow.function!r} must be a non-empty string")

    saga = workflow.kind is WorkflowKind.STANDARD
    states: dict[str, Any] = {}
    happy = [(s, "action") for s in workflow.steps]
    if workflow.on_success is not None:
        happy.append((workflow.on_success, "hook"))
    compensable = [s for s in workflow.steps if s.compensation]

    states[START_STATE] = {
        "Type": "Pass",
        "Comment": "Wrap the execution input (the outbox envelope) as {event, results}.",
        "Parameters": {"event.$": "$", "results": {}},
        "Next": happy[0][0].name,
    }
    for index, (step, kind) in enumerate(happy):
        following = happy[index + 1][0].name if index + 1 < len(happy) else MARK_COMPLETED
        state = _task(workflow, function_arn, step, step.action, kind, following)
        if saga:
            # Compensate the completed steps before this one (a hook follows every step).
            done = workflow.steps[:index] if kind == "action" else workflow.steps
            undo = [s for s in done if s.compensation]
            state["Catch"] = [
                {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": _first_undo(workflow, undo)}
            ]
            state["Next"] = state.pop("Next")
        states[step.name] = state
    states[MARK_COMPLETED] = _mark("completed", COMPLETED_STATE)
    states[COMPLETED_STATE] = {"Type": "Succeed"}

    if saga:
        for position in range(len(compensable) - 1, -1, -1):
            step = compensable[position]
            following = _first_undo(workflow, compensable[:position])
            name = compensation_state_name(step.name)
            state = _task(workflow, function_arn, step, step.compensation or "", "compensation", following)
            state["Catch"] = [
                {
                    "ErrorEquals": ["States.ALL"],
                    "ResultPath": "$.compensation_error",
                    "Next": COMPENSATION_FAILED,
                }
            ]
            state["Next"] = state.pop("Next")
            states[name] = state
        if workflow.on_compensated is not None:
            hook = workflow.on_compensated
            state = _task(workflow, function_arn, hook, hook.action, "hook", MARK_COMPENSATED)
            state["Catch"] = [
                {
                    "ErrorEquals": ["States.ALL"],
                    "ResultPath": "$.compensation_error",
                    "Next": COMPENSATION_FAILED,
                }
            ]
            state["Next"] = state.pop("Next")
            states[hook.name] = state
        states[MARK_COMPENSATED] = _mark("compensated", COMPENSATED_STATE)
        states[COMPENSATED_STATE] = {"Type": "Succeed"}
        states[COMPENSATION_FAILED] = {
            "Type": "Fail",
            "Error": COMPENSATION_FAILED,
            "Cause": COMPENSATION_FAILED_CAUSE,
        }

    return {
        "Comment": f"{WorkflowKind(workflow.kind).value} workflow {workflow.name} (generated by workflows)",
        "StartAt": START_STATE,
        "States": states,
    }


def saga_outcome(entered: Sequence[str]) -> str | None:
    """The outcome of a Standard saga from the states it entered, read off the compiled end
    states (not guessed from step names): ``"completed"``, ``"compensated"``,
    ``"compensation_failed"``, or None while it has reached none of them."""
    names = set(entered)
    if COMPENSATION_FAILED in names:
        return "compensation_failed"
    if MARK_COMPENSATED in names:
        return "compensated"
    if MARK_COMPLETED in names:
        return "completed"
    return None


def to_json(definition: Mapping[str, Any], *, indent: int | None = 2) -> str:
    """Serialize an ASL definition (stable key order as compiled)."""
    return json.dumps(definition, indent=indent)


def _first_undo(workflow: Workflow, compensable_done: list[Step]) -> str:
    """Entry of the compensation chain for these completed steps (the latest one first)."""
    if compensable_done:
        return compensation_state_name(compensable_done[-1].name)
    return workflow.on_compensated.name if workflow.on_compensated is not None else MARK_COMPENSATED


def _mark(status: str, following: str) -> dict[str, Any]:
    return {"Type": "Pass", "Result": status, "ResultPath": "$.status", "Next": following}


def _task(
    workflow: Workflow, function_arn: str, step: Step, action: str, kind: str, following: str
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "workflow": workflow.name,
        "step": step.name,
        "action": action,
        "kind": kind,
        "execution.$": "$$.Execution.Name",
        "state.$": "$$.State.Name",
        "event.$": "$.event",
        "results.$": "$.results",
    }
    resource = LAMBDA_INVOKE
    selector = {"output.$": "$.Payload"}
    if step.integration is Integration.LAMBDA_WAIT_FOR_TASK_TOKEN:
        resource = f"{LAMBDA_INVOKE}.waitForTaskToken"
        payload["task_token.$"] = "$$.Task.Token"
        selector = {"output.$": "$"}  # the SendTaskSuccess output, not an Invoke response
    result_key = compensation_state_name(step.name) if kind == "compensation" else step.name
    state: dict[str, Any] = {
        "Type": "Task",
        "Resource": resource,
        "Parameters": {"FunctionName": function_arn, "Payload": payload},
        "ResultSelector": selector,
        "ResultPath": f"$.results.{result_key}",
        "TimeoutSeconds": step.timeout_seconds,
    }
    retry = step.retry
    if retry.max_attempts > 1:
        state["Retry"] = [
            {
                "ErrorEquals": list(retry.errors),
                "IntervalSeconds": retry.interval_seconds,
                "BackoffRate": float(retry.backoff_rate),
                "MaxAttempts": retry.max_attempts - 1,
            }
        ]
    state["Next"] = following
    return state
