"""Definition-time rules for retry policies, steps and saga_outbox.workflows.

Each check raises :class:`~saga_outbox.workflows.exceptions.WorkflowValidationError` naming the
offending value.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from saga_outbox.workflows import naming
from saga_outbox.workflows.exceptions import WorkflowValidationError

if TYPE_CHECKING:
    from saga_outbox.workflows.definition import RetryPolicy, Step, Workflow

EXPRESS_MAX_SECONDS = 300
"""Express workflows are stopped by the service after 5 minutes."""

MAX_TASK_TIMEOUT_SECONDS = 99_999_999
MAX_RETRY_INTERVAL_SECONDS = 99_999_999
LAMBDA_MAX_TIMEOUT_SECONDS = 900  # a request/response step runs inside one Lambda invocation
MAX_RETRY_ATTEMPTS = 100  # total attempts: ASL MaxAttempts is at most 99_999_999, keep it sane

# States the compiler adds around the user's steps; a step may not take these names.
RESERVED_STATE_NAMES = frozenset(
    {"Start", "MarkCompleted", "SagaCompleted", "MarkCompensated", "SagaCompensated", "CompensationFailed"}
)


def error(field: str, value: object, rule: str) -> WorkflowValidationError:
    return WorkflowValidationError(f"invalid {field} {value!r}: {rule}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_retry_policy(policy: RetryPolicy) -> None:
    if not policy.errors:
        raise error("errors", policy.errors, "needs at least one error name (e.g. 'States.ALL')")
    for name in policy.errors:
        if not isinstance(name, str) or not name.strip():
            raise error("error name", name, "must be a non-empty string")
    if "States.ALL" in policy.errors and len(policy.errors) > 1:
        raise error("errors", policy.errors, "'States.ALL' must appear alone")
    if not _is_int(policy.interval_seconds) or not 1 <= policy.interval_seconds <= MAX_RETRY_INTERVAL_SECONDS:
        raise error("interval_seconds", policy.interval_seconds, "must be an int >= 1 (ASL IntervalSeconds)")
    if (
        isinstance(policy.backoff_rate, bool)
        or not isinstance(policy.backoff_rate, int | float)
        or not math.isfinite(policy.backoff_rate)
        or policy.backoff_rate < 1.0
    ):
        raise error("backoff_rate", policy.backoff_rate, "must be a number >= 1.0 (ASL BackoffRate)")
    if not _is_int(policy.max_attempts) or not 1 <= policy.max_attempts <= MAX_RETRY_ATTEMPTS:
        raise error(
            "max_attempts",
            policy.max_attempts,
            f"must be an int from 1 to {MAX_RETRY_ATTEMPTS} (attempts including the first)",
        )


def check_step(step: Step) -> None:
    from saga_outbox.workflows.definition import Integration, RetryPolicy

    naming.validate_step_name(step.name)
    if step.name in RESERVED_STATE_NAMES:
        raise error(
            "step name", step.name, f"is reserved for a generated state ({sorted(RESERVED_STATE_NAMES)})"
        )
    if step.action is None or step.action == "":
        raise error(f"action of step {step.name!r}", step.action, "every step needs an action")
    naming.validate_action_name(step.action)
    if step.compensation is not None:
        naming.validate_action_name(step.compensation)
    if not isinstance(step.retry, RetryPolicy):
        raise error(f"retry of step {step.name!r}", step.retry, "must be a RetryPolicy")
    if not _is_int(step.timeout_seconds) or not 1 <= step.timeout_seconds <= MAX_TASK_TIMEOUT_SECONDS:
        raise error(f"timeout_seconds of step {step.name!r}", step.timeout_seconds, "must be an int >= 1")
    if step.integration is Integration.LAMBDA and step.timeout_seconds > LAMBDA_MAX_TIMEOUT_SECONDS:
        raise error(
            f"timeout_seconds of step {step.name!r}",
            step.timeout_seconds,
            f"a Lambda runs at most {LAMBDA_MAX_TIMEOUT_SECONDS} s; use lambda.waitForTaskToken beyond",
        )
    if not _is_int(step.max_result_bytes) or not 0 <= step.max_result_bytes <= 256 * 1024:
        raise error(
            f"max_result_bytes of step {step.name!r}",
            step.max_result_bytes,
            "must be an int from 0 to 262144 (Step Functions' 256 KiB state limit)",
        )
    if not isinstance(step.idempotent, bool):
        raise error(f"idempotent of step {step.name!r}", step.idempotent, "must be a bool")


def check_workflow(workflow: Workflow) -> None:
    from saga_outbox.workflows.definition import Step, WorkflowKind

    naming.validate_workflow_name(workflow.name)
    naming.validate_function_key(workflow.function)
    if not workflow.steps:
        raise error(f"steps of workflow {workflow.name!r}", workflow.steps, "needs at least one step")
    for item in workflow.steps:
        if not isinstance(item, Step):
            raise error(f"step of workflow {workflow.name!r}", item, "must be a Step")
    for hook_field, hook in (
        ("on_success", workflow.on_success),
        ("on_compensated", workflow.on_compensated),
    ):
        if hook is None:
            continue
        if not isinstance(hook, Step):
            raise error(hook_field, hook, "must be a Step or None")
        if hook.compensation is not None:
            raise error(
                f"compensation of hook {hook.name!r}", hook.compensation, "hooks take no compensation"
            )

    seen: set[str] = set()
    for state in _state_names(workflow):
        if state in seen:
            raise error(
                f"state name in workflow {workflow.name!r}",
                state,
                "is used twice (step and hook names, and 'Compensate' + step name, must be unique)",
            )
        seen.add(state)

    if workflow.kind is WorkflowKind.EXPRESS:
        _check_express(workflow)
    else:
        _check_saga_shape(workflow)


def _state_names(workflow: Workflow) -> list[str]:
    from saga_outbox.workflows.definition import WorkflowKind
    from saga_outbox.workflows.outcomes import pivot_index, saga_sequence

    names = [s.name for s in workflow.steps] + [h.name for h in workflow.hooks()]
    names += [naming.compensation_state_name(s.name) for s in workflow.steps if s.compensation]
    if workflow.kind is WorkflowKind.STANDARD:
        sequence = saga_sequence(workflow)
        pivot = pivot_index(workflow)
        end = len(sequence) if pivot is None else pivot + 1
        names += [naming.failure_choice_name(s.name) for s in sequence[:end]]
        if pivot is not None:
            names.append(naming.unresolved_state_name(sequence[pivot].name))
    return names


def _check_saga_shape(workflow: Workflow) -> None:
    """The classic saga: compensable steps, at most one pivot (the first step or on_success
    hook without a compensation: the point of no return), then only steps retried until they
    succeed. A failure after the pivot could undo nothing that matters (the pivot stays), so a
    step there may neither be compensable nor fail on anything short of exhausting a
    ``States.ALL`` retrier."""
    from saga_outbox.workflows.outcomes import pivot_index, saga_sequence

    sequence = saga_sequence(workflow)
    pivot = pivot_index(workflow)
    if pivot is None:
        return
    for step in sequence[pivot + 1 :]:
        where = f"step {step.name!r} of workflow {workflow.name!r}"
        after = f"it comes after the pivot {sequence[pivot].name!r} (the first step without a compensation)"
        if step.compensation:
            raise error(
                f"compensation of {where}",
                step.compensation,
                f"{after} and nothing after the pivot is compensated; move the step before the pivot",
            )
        if step.retry.errors != ("States.ALL",):
            raise error(
                f"retry errors of {where}",
                step.retry.errors,
                f"{after}, so it must be retried until it succeeds: "
                "retry=RetryPolicy(errors=('States.ALL',), ...); or give the pivot a compensation",
            )


def _check_express(workflow: Workflow) -> None:
    from saga_outbox.workflows.definition import Integration

    where = f"Express workflow {workflow.name!r}"
    if workflow.on_compensated is not None:
        raise error(
            f"on_compensated of {where}", workflow.on_compensated.name, "Express workflows do not compensate"
        )
    for step in (*workflow.steps, *workflow.hooks()):
        if not step.idempotent:
            raise error(
                f"step of {where}",
                step.name,
                "must be declared idempotent=True (Express executions are at-least-once)",
            )
        if step.compensation is not None:
            raise error(
                f"compensation of step {step.name!r} in {where}",
                step.compensation,
                "Express workflows do not compensate; use a Standard workflow",
            )
        if Integration(step.integration).pattern in ("sync", "waitForTaskToken"):
            raise error(
                f"integration of step {step.name!r} in {where}",
                str(step.integration),
                "Express workflows do not support .sync or .waitForTaskToken",
            )
    worst = workflow.worst_case_seconds()
    if worst > EXPRESS_MAX_SECONDS:
        raise error(
            f"worst-case duration of {where}",
            worst,
            f"seconds (sum over steps of timeout_seconds x max_attempts + retry waits) exceeds the "
            f"{EXPRESS_MAX_SECONDS} s Express limit; lower timeouts or attempts",
        )
