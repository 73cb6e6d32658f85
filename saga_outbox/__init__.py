"""saga-outbox: a transactional outbox (PostgreSQL -> SQS FIFO) and Step Functions sagas.

The names below are the public API; everything else lives in private modules or in the
sub-packages (``saga_outbox.workflows``, ``saga_outbox.lambdas``, ``saga_outbox.cdk``,
``saga_outbox.local``, ``saga_outbox.inspector``) and the embeddable ``outbox_relay``.

Attributes resolve lazily (PEP 562): ``import saga_outbox`` costs nothing, so a Lambda cold
start or the relay imports only what it uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._errors import AppError, Error
from ._lazy import lazy_exports

if TYPE_CHECKING:
    from saga_outbox._app import EventRoute, SagaApp
    from saga_outbox._discovery import load_app
    from saga_outbox.lambdas.exceptions import BusinessRuleViolation, TransientError
    from saga_outbox.lambdas.tasks import StepContext
    from saga_outbox.workflows.definition import (
        TRANSIENT_ERRORS,
        Integration,
        RetryPolicy,
        Step,
        Workflow,
        WorkflowKind,
    )
    from saga_outbox.workflows.exceptions import WorkflowError

__all__ = [
    "TRANSIENT_ERRORS",
    "AppError",
    "BusinessRuleViolation",
    "Error",
    "EventRoute",
    "Integration",
    "RetryPolicy",
    "SagaApp",
    "Step",
    "StepContext",
    "TransientError",
    "Workflow",
    "WorkflowError",
    "WorkflowKind",
    "load_app",
]

_LAZY = {
    "SagaApp": "saga_outbox._app",
    "EventRoute": "saga_outbox._app",
    "load_app": "saga_outbox._discovery",
    "StepContext": "saga_outbox.lambdas.tasks",
    "BusinessRuleViolation": "saga_outbox.lambdas.exceptions",
    "TransientError": "saga_outbox.lambdas.exceptions",
    "TRANSIENT_ERRORS": "saga_outbox.workflows.definition",
    "Integration": "saga_outbox.workflows.definition",
    "RetryPolicy": "saga_outbox.workflows.definition",
    "Step": "saga_outbox.workflows.definition",
    "Workflow": "saga_outbox.workflows.definition",
    "WorkflowKind": "saga_outbox.workflows.definition",
    "WorkflowError": "saga_outbox.workflows.exceptions",
}


__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)
