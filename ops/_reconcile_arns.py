"""Which state machine runs each workflow, for the reconciler: given (``STATE_MACHINE_ARNS``-style
JSON, as the dispatcher reads it) or resolved by name from ``ListStateMachines``.

The construct names a state machine ``<stack>-<workflow>`` (``cdk/orchestration.py``) and the
local runtime names it ``<workflow>``, so a name resolves when it equals the workflow or ends
with ``-<workflow>``. Two stacks of the same app in one account and region make that ambiguous:
then the operator must say which one with ``--state-machine-arns``, never a guess.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from saga_outbox._errors import Error

__all__ = [
    "ReconcileAWSError",
    "ReconcileError",
    "ReconcileInputError",
    "match_state_machines",
    "parse_state_machine_arns",
    "resolve_state_machine_arns",
]


class ReconcileError(Error):
    """Base class of the reconciler's errors."""


class ReconcileInputError(ReconcileError, ValueError):
    """An option the reconciler cannot use (bad JSON, a workflow with no or several machines)."""


class ReconcileAWSError(ReconcileError):
    """A Step Functions call failed (throttling, access denied, network); the message names it."""

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.code = code


def aws_error(exc: Exception, operation: str, target: str = "") -> ReconcileAWSError:
    """One line naming the call, its target and the service's code (raise it ``from exc``)."""
    code = ""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        detail = f"{code}: {err.get('Message', exc)}"
    else:
        detail = str(exc)
    return ReconcileAWSError(f"{operation} failed{f' for {target}' if target else ''}: {detail}", code=code)


def parse_state_machine_arns(
    text: str, workflows: Sequence[str], *, required: Sequence[str] | None = None
) -> dict[str, str]:
    """``{"<workflow>": "<state machine ARN>", ...}`` checked against the app's ``workflows``: a
    key the app does not have is a typo that would silently leave a workflow unchecked, and
    every ``required`` one (the routed workflows, as for the dispatcher) needs an ARN."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ReconcileInputError(f"--state-machine-arns is not JSON: {exc}") from exc
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v.startswith("arn:") for k, v in data.items()
    ):
        raise ReconcileInputError(
            '--state-machine-arns must be a JSON object {"<workflow>": "arn:aws:states:...", ...}'
        )
    unknown = sorted(set(data) - set(workflows))
    if unknown:
        raise ReconcileInputError(
            f"--state-machine-arns names workflow(s) the app does not have: {', '.join(unknown)} "
            f"(the app has {', '.join(sorted(workflows))})"
        )
    missing = sorted(set(workflows if required is None else required) - set(data))
    if missing:
        raise ReconcileInputError(f"--state-machine-arns has no ARN for workflow(s): {', '.join(missing)}")
    return dict(data)


def _matches(machine: str, workflow: str) -> bool:
    return machine == workflow or machine.endswith(f"-{workflow}")


def match_state_machines(workflows: Iterable[str], machines: Iterable[tuple[str, str]]) -> dict[str, str]:
    """workflow -> ARN from ``(name, arn)`` pairs. A machine matching several workflows
    (``stack-Order-Saga`` ends with ``-Saga`` and with ``-Order-Saga``) belongs to the longest:
    it names that workflow in full. Zero or several machines for a workflow raise, naming it."""
    names = sorted(set(workflows))
    candidates: dict[str, list[tuple[str, str]]] = {w: [] for w in names}
    for machine, arn in machines:
        fitting = [w for w in names if _matches(machine, w)]
        if fitting:
            candidates[max(fitting, key=len)].append((machine, arn))
    resolved: dict[str, str] = {}
    for workflow in names:
        found = candidates[workflow]
        if not found:
            raise ReconcileInputError(
                f"no state machine named {workflow!r} or '<stack>-{workflow}' for workflow {workflow!r}; "
                "pass --state-machine-arns (the dispatcher's STATE_MACHINE_ARNS)"
            )
        if len(found) > 1:
            several = ", ".join(sorted(m for m, _ in found))
            raise ReconcileInputError(
                f"workflow {workflow!r} matches several state machines ({several}); "
                "pass --state-machine-arns to choose"
            )
        resolved[workflow] = found[0][1]
    return resolved


def resolve_state_machine_arns(sfn_client: Any, workflows: Sequence[str]) -> dict[str, str]:
    """:func:`match_state_machines` over every state machine the client can list."""
    try:
        pages = sfn_client.get_paginator("list_state_machines").paginate()
        machines = [(sm["name"], sm["stateMachineArn"]) for page in pages for sm in page["stateMachines"]]
    except (ClientError, BotoCoreError) as exc:
        raise aws_error(exc, "ListStateMachines") from exc
    return match_state_machines(workflows, machines)


def checked_mapping(
    mapping: Mapping[str, str], workflows: Sequence[str], *, required: Sequence[str] | None = None
) -> dict[str, str]:
    """A mapping given in code (not JSON), held to the same rules as the option."""
    return parse_state_machine_arns(json.dumps(dict(mapping)), workflows, required=required)
