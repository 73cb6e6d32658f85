"""Every error raised by ``lambdas`` derives from :class:`LambdasError`.

Step Functions names a Lambda failure after the exception class (``errorType``), so the
class names below are part of the contract with the state machines:

* :class:`BusinessRuleViolation` (an app subclasses it: ``PaymentDeclined``, ...) is a *final*
  outcome: retrying cannot help, the saga compensates. Raised by a compensation, it ends the
  saga in ``CompensationFailed``.
* :class:`TransientError` subclasses (``DatabaseUnavailable``, ``DispatchFailed``) are worth a
  retry (Step Functions ``Retry`` / SQS redelivery).

botocore and psycopg/SQLAlchemy errors never leave this package untranslated; the
original is always chained with ``raise ... from exc``.
"""

from __future__ import annotations

from saga_outbox._errors import Error
from saga_outbox.workflows.definition import TRANSIENT_ERRORS

__all__ = [
    "RETRYABLE_ERROR_NAMES",
    "BusinessRuleViolation",
    "ConfigurationError",
    "DatabaseUnavailable",
    "DispatchFailed",
    "IdempotencyStoreUnavailable",
    "LambdasError",
    "MalformedEvent",
    "StepInProgress",
    "TransientError",
    "UnknownAction",
]


class LambdasError(Error):
    """Base class of every error raised by the ``lambdas`` package."""


class ConfigurationError(LambdasError):
    """An environment variable (or injected setting) is missing or invalid."""


class MalformedEvent(LambdasError):
    """A message or task payload cannot be parsed (poison message: goes to the DLQ after retries)."""


class UnknownAction(LambdasError):
    """No registered function for a (workflow, action) pair."""


class BusinessRuleViolation(LambdasError):
    """A final business failure of a saga step: the saga must compensate, not retry."""


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
