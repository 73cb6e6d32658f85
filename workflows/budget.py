"""How large an event a workflow can take: Step Functions' 256 KiB limit on the execution input
and on the state data, minus what the saga accumulates on the way.

``States.DataLimitExceeded`` cannot be caught (no compensation, no ``CompensationFailed``), so
the room is reserved up front: every Task's declared ``Step.max_result_bytes`` (its result
lands in ``$.results``, compensations too) and the errors the saga may record (``$.error``,
``$.failed.<State>``). The outbox writer checks an envelope against the smallest budget of the
workflows its event type is routed to; larger payloads go by reference (claim check, see
``docs/workflows.md``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from saga_outbox.workflows.definition import WorkflowKind

if TYPE_CHECKING:
    from saga_outbox.workflows.definition import Workflow

__all__ = ["ERROR_ALLOWANCE_BYTES", "STATE_DATA_LIMIT_BYTES", "workflow_input_budget_bytes"]

STATE_DATA_LIMIT_BYTES = 256 * 1024
"""Step Functions' limit for an execution input and for the data passed between states."""

ERROR_ALLOWANCE_BYTES = 8 * 1024
"""Room for one recorded error object (Error + Cause; a Lambda cause carries a stack trace)."""

_WRAPPER_BYTES = 1024  # {"event": ..., "results": {...}, "status": ...} keys and result wrappers


def workflow_input_budget_bytes(workflow: Workflow) -> int:
    """Largest envelope (UTF-8 JSON bytes) ``workflow`` can start with and still finish: the
    limit minus every Task's ``max_result_bytes`` and room for the errors it may record (a
    Standard saga: the failing step's and one compensation's). May be <= 0: then no event fits
    and the workflow's steps must return less."""
    tasks = [*workflow.steps, *workflow.hooks()]
    results = sum(s.max_result_bytes for s in tasks)
    results += sum(s.max_result_bytes for s in workflow.steps if s.compensation)
    errors = 2 * ERROR_ALLOWANCE_BYTES if workflow.kind is WorkflowKind.STANDARD else 0
    return STATE_DATA_LIMIT_BYTES - _WRAPPER_BYTES - results - errors
