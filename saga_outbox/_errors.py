"""The one error root of saga-outbox.

Every error the package raises on purpose derives from :class:`Error`: ``OutboxError`` (the
relay and the writer), ``WorkflowError`` (definitions and the compiler), ``LambdasError`` (the
handlers), ``InspectorError`` (the executions inspector) and ``AppError`` (finding and checking
a user's :class:`~saga_outbox.SagaApp`). The CLI prints its message and exits 2.

This module imports nothing, so that the embeddable ``outbox_relay`` can derive from it
without pulling the rest of the package in.
"""

from __future__ import annotations

__all__ = ["AppError", "Error"]


class Error(Exception):
    """Base class of every error raised by saga-outbox."""


class AppError(Error, ValueError):
    """A user's app cannot be found (``module:attr``) or is incomplete (a workflow names an
    action nobody registered, a route names an unknown workflow, ...)."""
