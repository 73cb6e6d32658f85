"""Compile a :class:`~saga_outbox.workflows.definition.Workflow` into an Amazon States Language definition.

The same dict is deployed by CDK and executed locally by moto. Layout of a Standard saga with
steps S1..Sn (compensations C1..Cn), at most one pivot P (the first step or hook without a
compensation, see :mod:`saga_outbox.workflows.outcomes`)::

    Start (Pass: {"event": $, "results": {}})
      -> S1 -> ... -> Sn -> [on_success] -> MarkCompleted (status=completed) -> SagaCompleted
    Sk (before P) fails after its retries (Catch States.ALL, error at $.error) -> SkFailed (Choice)
      rejected (Rejected.*)  -> Compensate S(k-1) -> ... -> Compensate S1
      unknown outcome        -> Compensate Sk -> Compensate S(k-1) -> ... -> Compensate S1
      -> [on_compensated] -> MarkCompensated (status=compensated) -> SagaCompensated
    P fails -> PFailed: rejected -> Compensate S(k-1) ...; unknown -> PUnresolved -> CompensationFailed
    a step after P, a compensation or on_compensated fails after its retries (error at
    $.failed.<State>) -> CompensationFailed (Fail, Error "CompensationFailed",
    Cause = JSON {state: {Error, Cause}} of what failed: what the operator must repair)

Express: the same happy path without Catch or compensations. Task timeouts come from
:mod:`saga_outbox.workflows.timeouts`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from saga_outbox.workflows.definition import Integration, Step, Workflow, WorkflowKind
from saga_outbox.workflows.exceptions import CompilationError
from saga_outbox.workflows.naming import (
    compensation_state_name,
    failure_choice_name,
    unresolved_state_name,
)
from saga_outbox.workflows.outcomes import choice_rules, pivot_index, saga_sequence
from saga_outbox.workflows.timeouts import function_timeout_seconds, lambda_tasks, task_timeout_seconds
from saga_outbox.workflows.validation import EXPRESS_MAX_SECONDS

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
START_STATE = "Start"
MARK_COMPLETED = "MarkCompleted"
COMPLETED_STATE = "SagaCompleted"
MARK_COMPENSATED = "MarkCompensated"
COMPENSATED_STATE = "SagaCompensated"
COMPENSATION_FAILED = "CompensationFailed"
#: where every state that ends in CompensationFailed leaves its error, keyed by state name
FAILED_PATH = "$.failed"
#: the Fail state's cause: ``{"CompensateChargePayment": {"Error": ..., "Cause": ...}}``
COMPENSATION_FAILED_CAUSE_PATH = f"States.JsonToString({FAILED_PATH})"


def compile_definition(
    workflow: Workflow,
    *,
    function_arns: Mapping[str, str],
    function_timeouts: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """ASL definition of ``workflow``; ``function_arns`` maps ``workflow.function`` to a Lambda ARN.

    ``function_timeouts`` maps it to the function's configured timeout (CDK passes
    :func:`~saga_outbox.workflows.timeouts.function_timeout_seconds` over *all* the app's
    workflows, the figure it deploys); without it the timeout is derived from this workflow
    alone. Every request/response Task waits that long plus a margin."""
    try:
        function_arn = function_arns[workflow.function]
    except KeyError:
        raise CompilationError(
            f"no function ARN for {workflow.function!r} (workflow {workflow.name!r}); "
            f"got keys {sorted(function_arns)}"
        ) from None
    if not isinstance(function_arn, str) or not function_arn:
        raise CompilationError(f"function ARN for {workflow.function!r} must be a non-empty string")
    task_timeout = task_timeout_seconds(_function_timeout(workflow, function_timeouts))
    return _Compiler(workflow, function_arn, task_timeout).definition()


def _function_timeout(workflow: Workflow, function_timeouts: Mapping[str, int] | None) -> int:
    own = function_timeout_seconds([workflow], function=workflow.function)
    if function_timeouts is None:
        return own
    if workflow.function not in function_timeouts:
        raise CompilationError(
            f"no function timeout for {workflow.function!r} (workflow {workflow.name!r}); "
            f"got keys {sorted(function_timeouts)}"
        )
    seconds = function_timeouts[workflow.function]
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < own:
        longest = max(lambda_tasks(workflow), key=lambda s: s.timeout_seconds)
        raise CompilationError(
            f"invalid function timeout {seconds!r} for {workflow.function!r}: step {longest.name!r} "
            f"of workflow {workflow.name!r} needs {own} s"
        )
    return seconds


class _Compiler:
    def __init__(self, workflow: Workflow, function_arn: str, task_timeout: int) -> None:
        self.wf, self.arn, self.task_timeout = workflow, function_arn, task_timeout
        self.states: dict[str, Any] = {}

    def definition(self) -> dict[str, Any]:
        wf = self.wf
        saga = wf.kind is WorkflowKind.STANDARD
        happy = saga_sequence(wf)
        self.states[START_STATE] = {
            "Type": "Pass",
            "Comment": "Wrap the execution input (the outbox envelope) as {event, results}.",
            "Parameters": {"event.$": "$", "results": {}},
            "Next": happy[0].name,
        }
        pivot = pivot_index(wf) if saga else None
        for index, step in enumerate(happy):
            kind = "action" if index < len(wf.steps) else "hook"
            following = happy[index + 1].name if index + 1 < len(happy) else MARK_COMPLETED
            state = self._task(step, step.action, kind, following)
            self.states[step.name] = state
            if saga:
                self._on_failure(state, index, pivot)
        self.states[MARK_COMPLETED] = _mark("completed", COMPLETED_STATE)
        self.states[COMPLETED_STATE] = {"Type": "Succeed"}
        if saga:
            self._compensations()
        else:
            self._check_express_duration()
        return {
            "Comment": f"{WorkflowKind(wf.kind).value} workflow {wf.name} (generated by workflows)",
            "StartAt": START_STATE,
            "States": self.states,
        }

    def _on_failure(self, state: dict[str, Any], index: int, pivot: int | None) -> None:
        """Where a failure of the ``index``-th happy-path state goes (see the module layout)."""
        step = saga_sequence(self.wf)[index]
        if pivot is not None and index > pivot:
            state["Catch"] = [_catch_to_alarm(step.name)]
        else:
            done = [s for s in self.wf.steps[:index] if s.compensation]
            rejected = self._first_undo(done)
            if pivot is not None and index == pivot:
                unknown = unresolved_state_name(step.name)
                self.states[unknown] = {
                    "Type": "Pass",
                    "Comment": "The pivot may have taken effect and cannot be undone: repair by hand.",
                    "InputPath": "$.error",
                    "ResultPath": f"{FAILED_PATH}.{step.name}",
                    "Next": COMPENSATION_FAILED,
                }
            else:
                unknown = compensation_state_name(step.name)
            choice = failure_choice_name(step.name)
            self.states[choice] = choice_rules(step, error_path="$.error", rejected=rejected, unknown=unknown)
            state["Catch"] = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": choice}]
        state["Next"] = state.pop("Next")

    def _compensations(self) -> None:
        wf = self.wf
        compensable = [s for s in wf.steps if s.compensation]
        for position in range(len(compensable) - 1, -1, -1):
            step = compensable[position]
            name = compensation_state_name(step.name)
            following = self._first_undo(compensable[:position])
            state = self._task(step, step.compensation or "", "compensation", following)
            state["Catch"] = [_catch_to_alarm(name)]
            state["Next"] = state.pop("Next")
            self.states[name] = state
        if wf.on_compensated is not None:
            hook = wf.on_compensated
            state = self._task(hook, hook.action, "hook", MARK_COMPENSATED)
            state["Catch"] = [_catch_to_alarm(hook.name)]
            state["Next"] = state.pop("Next")
            self.states[hook.name] = state
        self.states[MARK_COMPENSATED] = _mark("compensated", COMPENSATED_STATE)
        self.states[COMPENSATED_STATE] = {"Type": "Succeed"}
        self.states[COMPENSATION_FAILED] = {
            "Type": "Fail",
            "Comment": "Alarmed: neither completed nor fully undone; the cause names what failed.",
            "Error": COMPENSATION_FAILED,
            "CausePath": COMPENSATION_FAILED_CAUSE_PATH,
        }

    def _first_undo(self, compensable_done: list[Step]) -> str:
        """Entry of the compensation chain for these completed steps (the latest one first)."""
        if compensable_done:
            return compensation_state_name(compensable_done[-1].name)
        hook = self.wf.on_compensated
        return hook.name if hook is not None else MARK_COMPENSATED

    def _timeout(self, step: Step, kind: str = "action") -> int:
        if kind != "compensation" and step.integration is Integration.LAMBDA_WAIT_FOR_TASK_TOKEN:
            return max(step.timeout_seconds, self.task_timeout)  # the wait, but never below the invoke
        return self.task_timeout

    def _check_express_duration(self) -> None:
        worst = sum(
            self._timeout(s) * s.retry.max_attempts + s.retry.retry_wait_seconds
            for s in (*self.wf.steps, *self.wf.hooks())
        )
        if worst > EXPRESS_MAX_SECONDS:
            raise CompilationError(
                f"invalid worst-case duration {worst!r} of Express workflow {self.wf.name!r}: with Task "
                f"timeouts of {self.task_timeout} s (function timeout + margin) it exceeds the "
                f"{EXPRESS_MAX_SECONDS} s Express limit; lower attempts or move the slow steps elsewhere"
            )

    def _task(self, step: Step, action: str, kind: str, following: str) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "workflow": self.wf.name,
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
        # A compensation is always request/response: it must finish on its own (nobody may be
        # left to send a token), and its failure alarms.
        if kind != "compensation" and step.integration is Integration.LAMBDA_WAIT_FOR_TASK_TOKEN:
            resource = f"{LAMBDA_INVOKE}.waitForTaskToken"
            payload["task_token.$"] = "$$.Task.Token"
            selector = {"output.$": "$"}  # the SendTaskSuccess output, not an Invoke response
        result_key = compensation_state_name(step.name) if kind == "compensation" else step.name
        state: dict[str, Any] = {
            "Type": "Task",
            "Resource": resource,
            "Parameters": {"FunctionName": self.arn, "Payload": payload},
            "ResultSelector": selector,
            "ResultPath": f"$.results.{result_key}",
            "TimeoutSeconds": self._timeout(step, kind),
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


def _catch_to_alarm(state_name: str) -> dict[str, Any]:
    """A failure nothing can undo: record it under the state's name and alarm."""
    return {
        "ErrorEquals": ["States.ALL"],
        "ResultPath": f"{FAILED_PATH}.{state_name}",
        "Next": COMPENSATION_FAILED,
    }


def _mark(status: str, following: str) -> dict[str, Any]:
    return {"Type": "Pass", "Result": status, "ResultPath": "$.status", "Next": following}
