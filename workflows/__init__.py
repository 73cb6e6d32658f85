"""Sagas defined in Python, compiled once to Amazon States Language for CDK and the local runtime.

Define a :class:`Workflow` of :class:`Step` objects, validate it at construction, compile it with
:func:`compile_definition`. See ``docs/workflows.md``.
"""

from saga_outbox.workflows.budget import workflow_input_budget_bytes
from saga_outbox.workflows.compiler import compile_definition, to_json
from saga_outbox.workflows.definition import (
    REJECTION_PREFIX,
    TRANSIENT_ERRORS,
    Integration,
    RetryPolicy,
    Step,
    Workflow,
    WorkflowKind,
)
from saga_outbox.workflows.exceptions import (
    CompilationError,
    UnknownWorkflowError,
    WorkflowError,
    WorkflowValidationError,
)
from saga_outbox.workflows.naming import execution_name
from saga_outbox.workflows.timeouts import function_timeout_seconds, task_timeout_seconds

__all__ = [
    "REJECTION_PREFIX",
    "TRANSIENT_ERRORS",
    "CompilationError",
    "Integration",
    "RetryPolicy",
    "Step",
    "UnknownWorkflowError",
    "Workflow",
    "WorkflowError",
    "WorkflowKind",
    "WorkflowValidationError",
    "compile_definition",
    "execution_name",
    "function_timeout_seconds",
    "task_timeout_seconds",
    "to_json",
    "workflow_input_budget_bytes",
]
