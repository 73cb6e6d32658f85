"""Errors raised by :mod:`workflows`; every one derives from :class:`WorkflowError`."""

from __future__ import annotations

from saga_outbox._errors import Error


class WorkflowError(Error):
    """Base class of every error raised by the workflows package."""


class WorkflowValidationError(WorkflowError, ValueError):
    """A workflow, step, retry policy or route breaks a rule of Step Functions or of the saga model.
    Raised at definition time; the message names the offending value."""


class UnknownWorkflowError(WorkflowError, LookupError):
    """No registered workflow has the requested name."""


class CompilationError(WorkflowError):
    """A valid workflow cannot be compiled with the given inputs (e.g. a missing function ARN)."""
