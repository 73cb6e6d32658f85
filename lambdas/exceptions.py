"""Every error raised by ``lambdas`` derives from :class:`LambdasError`.

Step Functions names a Lambda failure after the exception class (``errorType``), so the
class names below are part of the contract with the state machines:

* :class:`BusinessRuleViolation` subclasses (``InventoryUnavailable``, ``PaymentDeclined``,
  ``ShipmentFailed``) are *final* outcomes: retrying cannot help, the saga compensates.
* :class:`RefundFailed` is raised by a compensation; the saga ends ``CompensationFailed``.
* :class:`TransientError` subclasses (``DatabaseUnavailable``, ``DispatchFailed``) are worth a
  retry (Step Functions ``Retry`` / SQS redelivery).

botocore and psycopg/SQLAlchemy errors never leave this package untranslated; the
original is always chained with ``raise ... from exc``.
"""

from __future__ import annotations

from workflows.orders import TRANSIENT_ERRORS

__all__ = [
    "RETRYABLE_ERROR_NAMES",
    "BusinessRuleViolation",
    "ConfigurationError",
    "DatabaseUnavailable",
    "DispatchFailed",
    "IdempotencyConflict",
    "IdempotencyStoreUnavailable",
    "InvalidOrderTransition",
    "InvalidRequest",
    "InventoryUnavailable",
    "LambdasError",
    "MalformedEvent",
    "PaymentDeclined",
    "RefundFailed",
    "ShipmentFailed",
    "StepInProgress",
    "TransientError",
    "UnknownAction",
]


class LambdasError(Exception):
    """Base class of every error raised by the ``lambdas`` package."""


class ConfigurationError(LambdasError):
    """An environment variable (or injected setting) is missing or invalid."""


class InvalidRequest(LambdasError, ValueError):
    """A command failed validation; ``field`` names the offending input when known."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class IdempotencyConflict(LambdasError):
    """An ``Idempotency-Key`` was reused with a different request body."""


class MalformedEvent(LambdasError):
    """A message or task payload cannot be parsed (poison message: goes to the DLQ after retries)."""


class UnknownAction(LambdasError):
    """No registered function for a (workflow, action) pair."""


class InvalidOrderTransition(LambdasError):
    """An order cannot move to the requested status (e.g. confirming a cancelled order)."""


class BusinessRuleViolation(LambdasError):
    """A final business failure of a saga step: the saga must compensate, not retry."""


class InventoryUnavailable(BusinessRuleViolation):
    """Reserving stock failed."""


class PaymentDeclined(BusinessRuleViolation):
    """Charging the customer failed."""


class ShipmentFailed(BusinessRuleViolation):
    """Creating the shipment failed."""


class RefundFailed(BusinessRuleViolation):
    """A refund (compensation) failed: the saga ends in ``CompensationFailed`` and alarms."""


class TransientError(LambdasError):
    """A temporary failure; the caller should retry (SQS redelivery, Step Functions Retry)."""


class DatabaseUnavailable(TransientError):
    """PostgreSQL could not be reached or aborted the transaction (serialization, deadlock)."""


class DispatchFailed(TransientError):
    """Starting a Step Functions execution failed (throttling, 5xx, any ClientError)."""


class StepInProgress(TransientError):
    """The same step (execution + state) is running in another invocation right now."""


class IdempotencyStoreUnavailable(TransientError):
    """The DynamoDB idempotency table could not be read or written."""


#: Error names (Step Functions matches names exactly, not class hierarchies) worth a Retry;
#: the business failures above are final and go straight to the Catch. The workflows' Retry
#: declarations are the one list; a test checks it names our transient exception classes.
RETRYABLE_ERROR_NAMES = TRANSIENT_ERRORS
