"""Every error raised by ``lambdas`` derives from :class:`LambdasError`.

Step Functions names a Lambda failure after the exception class (``errorType``), so the
class names below are part of the contract with the state machines:

* :class:`BusinessRuleViolation` (an app subclasses it: ``PaymentDeclined``, ...) is a *final*
  outcome that proves nothing happened (the action's transaction rolled back, and no earlier
  attempt took effect: an idempotent action that finds its own earlier effect returns it
  instead). The steps handler reports it as ``Rejected.PaymentDeclined``
  (:func:`as_rejection`), which the compiled saga matches: no retry, the step's own
  compensation is skipped, the steps before it are undone. Raised by a compensation, it ends
  the saga in ``CompensationFailed``.
* :class:`TransientError` subclasses (``DatabaseUnavailable``, ``DispatchFailed``) are worth a
  retry (Step Functions ``Retry`` / SQS redelivery).

botocore and psycopg/SQLAlchemy errors never leave this package untranslated; the
original is always chained with ``raise ... from exc``.
"""

from __future__ import annotations

import functools

from saga_outbox._errors import Error
from saga_outbox.workflows.definition import REJECTION_PREFIX, TRANSIENT_ERRORS

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
    "as_rejection",
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


def as_rejection(exc: BusinessRuleViolation) -> BusinessRuleViolation:
    """``exc`` as an instance of a subclass of its own class named ``Rejected.<ClassName>``:
    Lambda reports the class name as ``errorType`` (the ASL error name), so the compiled Choice
    can match every app's rejections by prefix, while ``except PaymentDeclined`` and the
    message, attributes and chain stay as they were."""
    cls = type(exc)
    if cls.__name__.startswith(REJECTION_PREFIX):
        return exc
    renamed = _rejection_class(cls)  # type: ignore[arg-type]  # classes are hashable
    # no __init__: app subclasses may take other arguments; copy the built instance instead
    out = renamed.__new__(renamed)
    out.__dict__.update(exc.__dict__)
    out.args = exc.args
    out.__cause__, out.__context__ = exc.__cause__, exc.__context__
    out.__suppress_context__ = exc.__suppress_context__
    return out.with_traceback(exc.__traceback__)


@functools.cache
def _rejection_class(cls: type[BusinessRuleViolation]) -> type[BusinessRuleViolation]:
    renamed = type(f"{REJECTION_PREFIX}{cls.__name__}", (cls,), {"__module__": cls.__module__})
    renamed.__qualname__ = f"{REJECTION_PREFIX}{cls.__qualname__}"
    return renamed
