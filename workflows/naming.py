"""Names that Step Functions accepts, and the deterministic execution name per event."""

from __future__ import annotations

import hashlib
import re
import uuid

from saga_outbox.workflows.exceptions import WorkflowValidationError

MAX_NAME_LENGTH = 80
"""Step Functions limit for state machine, execution and state names."""

COMPENSATION_PREFIX = "Compensate"
MAX_STEP_NAME_LENGTH = MAX_NAME_LENGTH - len(COMPENSATION_PREFIX)

# Step Functions forbids whitespace, brackets, wildcards, "#%\^|~`$&,;:/ and control characters
# in state machine and execution names; we keep to the portable subset (also safe in ARNs,
# CloudWatch log stream names and CDK construct ids).
_MACHINE_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")
_EXECUTION_NAME = _MACHINE_NAME
# Step names also appear in JSONPath (``$.results.<StepName>``): identifiers only.
_STEP_NAME = re.compile(rf"[A-Za-z][A-Za-z0-9_]{{0,{MAX_STEP_NAME_LENGTH - 1}}}")
_ACTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_FUNCTION_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _check(pattern: re.Pattern[str], value: object, what: str, rule: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise WorkflowValidationError(f"invalid {what} {value!r}: {rule}")
    return value


def validate_workflow_name(value: object) -> str:
    return _check(
        _MACHINE_NAME, value, "workflow name", "1-80 characters from A-Z a-z 0-9 _ - (a state machine name)"
    )


def validate_step_name(value: object) -> str:
    return _check(
        _STEP_NAME,
        value,
        "step name",
        f"1-{MAX_STEP_NAME_LENGTH} characters, a letter then letters, digits or _ "
        f"(a state name used in JSONPath; {len(COMPENSATION_PREFIX)} of the 80 characters "
        f"are kept for the {COMPENSATION_PREFIX!r} prefix)",
    )


def validate_action_name(value: object) -> str:
    return _check(_ACTION_NAME, value, "action", "1-128 characters, a letter or _ then letters, digits or _")


def validate_function_key(value: object) -> str:
    return _check(
        _FUNCTION_KEY, value, "function", "1-64 characters from A-Z a-z 0-9 _ - (a Lambda function name)"
    )


def compensation_state_name(step_name: str) -> str:
    """Name of the Task state that runs the compensation of ``step_name``."""
    return f"{COMPENSATION_PREFIX}{step_name}"


def failure_choice_name(step_name: str) -> str:
    """Name of the Choice state that reads why ``step_name`` failed (rejected or unknown)."""
    return f"{step_name}Failed"


def unresolved_state_name(step_name: str) -> str:
    """Name of the Pass state that records an unknown outcome of the pivot ``step_name``."""
    return f"{step_name}Unresolved"


def execution_name(workflow_name: str, event_id: str | uuid.UUID) -> str:
    """Deterministic Step Functions execution name for one event in one workflow.

    ``f"{event_id}-{workflow_name}"`` when that is a valid name (a UUID event id with a workflow
    name of up to 43 characters), otherwise ``f"{workflow_name[:15]}-{sha256(...)[:64]}"``.
    Always 1-80 characters from ``A-Z a-z 0-9 _ -``; equal inputs give equal names, so a
    Standard StartExecution repeated for the same event is deduplicated by the service.
    """
    validate_workflow_name(workflow_name)
    event = str(event_id)
    if not event:
        raise WorkflowValidationError("invalid event id '': must not be empty")
    readable = f"{event}-{workflow_name}"
    if _EXECUTION_NAME.fullmatch(readable):
        return readable
    digest = hashlib.sha256(f"{workflow_name}\0{event}".encode()).hexdigest()
    return f"{workflow_name[:15]}-{digest}"
