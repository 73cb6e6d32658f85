"""What a failed step proves, and where a saga's point of no return is: the rules shared by the
compiler (which emits them as ASL), the validation and the chaos checker (which judges
histories by them), so the three cannot drift apart.

A step that fails after its retries either *proved that nothing happened* (a declared
rejection) or has an *unknown outcome* (timeout, crash, retries exhausted: it may have
committed at the last second). Only the first kind skips the step's own compensation;
compensations are idempotent and succeed when there is nothing to undo, so undoing a step that
did nothing costs one no-op call, while skipping one that did something leaves a charge behind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from saga_outbox.workflows.definition import REJECTION_PREFIX, TRANSIENT_ERRORS, Integration

if TYPE_CHECKING:
    from saga_outbox.workflows.definition import Step, Workflow

__all__ = ["UNKNOWN_OUTCOME_PREFIXES", "choice_rules", "is_rejection", "pivot_index", "saga_sequence"]

#: Error namespaces of the service and the runtime (``States.Timeout``, ``Lambda.Unknown``,
#: ``Sandbox.Timedout``, ``Runtime.ExitError``, ...): never a statement about the effect.
UNKNOWN_OUTCOME_PREFIXES = ("States.", "Lambda.", "Sandbox.", "Runtime.")


def is_rejection(step: Step, error: str) -> bool:
    """Whether ``error`` (the ASL error name a failed ``step`` ended with) proves that nothing
    happened. Lambda steps: only ``Rejected.*`` (the steps handler's name for a
    ``BusinessRuleViolation``). Task-token steps: also any name the completer chose in
    ``SendTaskFailure`` (``ApprovalRejected``): that is a deliberate answer, while the service's
    and the runtime's names and our transient ones stay unknown."""
    if error.startswith(REJECTION_PREFIX):
        return True
    if step.integration is not Integration.LAMBDA_WAIT_FOR_TASK_TOKEN:
        return False
    return not error.startswith(UNKNOWN_OUTCOME_PREFIXES) and error not in TRANSIENT_ERRORS


def choice_rules(step: Step, *, error_path: str, rejected: str, unknown: str) -> dict[str, Any]:
    """The ASL Choice state that sends a failure of ``step`` (its error object at
    ``error_path``) to ``rejected`` or ``unknown``: :func:`is_rejection` written in ASL."""
    variable = f"{error_path}.Error"
    choices: list[dict[str, Any]] = [
        {"Variable": variable, "StringMatches": f"{REJECTION_PREFIX}*", "Next": rejected}
    ]
    default = unknown
    if step.integration is Integration.LAMBDA_WAIT_FOR_TASK_TOKEN:
        unknown_names: list[dict[str, Any]] = [
            {"Variable": variable, "StringMatches": f"{prefix}*"} for prefix in UNKNOWN_OUTCOME_PREFIXES
        ]
        unknown_names += [
            {"Variable": variable, "StringEquals": name}
            for name in TRANSIENT_ERRORS
            if not name.startswith(UNKNOWN_OUTCOME_PREFIXES)
        ]
        choices.append({"Or": unknown_names, "Next": unknown})
        default = rejected
    return {
        "Type": "Choice",
        "Comment": "A declared rejection proves nothing happened; any other failure may have committed.",
        "Choices": choices,
        "Default": default,
    }


def saga_sequence(workflow: Workflow) -> tuple[Step, ...]:
    """The happy path of a saga: its steps, then ``on_success``."""
    return (*workflow.steps, *([workflow.on_success] if workflow.on_success is not None else []))


def pivot_index(workflow: Workflow) -> int | None:
    """Position in :func:`saga_sequence` of the pivot, the first entry without a compensation
    (the point of no return), or None when every step is compensable and there is no hook."""
    for index, step in enumerate(saga_sequence(workflow)):
        if not step.compensation:
            return index
    return None
