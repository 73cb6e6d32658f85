"""Sagas defined in Python, compiled once to Amazon States Language for CDK and the local runtime.

Define a :class:`Workflow` of :class:`Step` objects, validate it at construction, compile it with
:func:`compile_definition`. See ``docs/workflows.md``.
"""

from workflows.compiler import compile_definition, to_json
from workflows.definition import Integration, RetryPolicy, Step, Workflow, WorkflowKind
from workflows.exceptions import (
    CompilationError,
    UnknownWorkflowError,
    WorkflowError,
    WorkflowValidationError,
)
from workflows.naming import execution_name
from workflows.registry import EventRoute, all_workflows, default_routes, get_workflow, workflows_for_event

__all__ = [
    "CompilationError",
    "EventRoute",
    "Integration",
    "RetryPolicy",
    "Step",
    "UnknownWorkflowError",
    "Workflow",
    "WorkflowError",
    "WorkflowKind",
    "WorkflowValidationError",
    "all_workflows",
    "compile_definition",
    "default_routes",
    "execution_name",
    "get_workflow",
    "to_json",
    "workflows_for_event",
]
