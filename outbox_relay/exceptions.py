"""Every error outbox_relay raises derives from :class:`OutboxError`.

Vendor errors (botocore, psycopg, SQLAlchemy) are translated into these and chained with
``from exc`` so callers never have to import a vendor's exception hierarchy.
"""

from __future__ import annotations

from saga_outbox._errors import Error

__all__ = [
    "AggregateTypeSeparatorError",
    "ConfigurationError",
    "CredentialsMissingError",
    "DatabaseUnavailableError",
    "InvalidEventError",
    "OutboxError",
    "OutboxTableMissingError",
    "PayloadNotJsonError",
    "PayloadTooLargeError",
    "PublishError",
    "QueueNotFifoError",
    "QueueNotFoundError",
]


class OutboxError(Error):
    """Base class of every error raised by outbox_relay."""


class ConfigurationError(OutboxError, ValueError):
    """An option or a start-up setting is invalid; the message says which and how to fix it."""


class InvalidEventError(OutboxError, ValueError):
    """An event handed to ``enqueue`` is malformed (empty type, group id SQS would refuse, ...)."""


class AggregateTypeSeparatorError(InvalidEventError):
    """``aggregate_type`` contains ``:``, the separator of the MessageGroupId ``type:key``:
    ``order:eu`` + ``42`` and ``order`` + ``eu:42`` would be one group."""


class PayloadNotJsonError(InvalidEventError):
    """The payload or headers cannot be serialized as JSON."""


class PayloadTooLargeError(InvalidEventError):
    """The SQS message (body + attributes) would exceed the size limit."""

    def __init__(self, message: str, *, event_id: str, size: int, limit: int) -> None:
        super().__init__(message)
        self.event_id = event_id
        self.size = size
        self.limit = limit


class DatabaseUnavailableError(OutboxError):
    """PostgreSQL could not be reached or refused the connection."""


class OutboxTableMissingError(OutboxError):
    """The outbox table does not exist: run ``saga-outbox outbox migrate``."""


class QueueNotFoundError(OutboxError):
    """The queue URL does not name an existing queue."""


class QueueNotFifoError(OutboxError):
    """The queue exists but is not a FIFO queue."""


class CredentialsMissingError(OutboxError):
    """No AWS credentials were found."""


class PublishError(OutboxError):
    """A whole publish request failed (network, throttling, service error)."""

    def __init__(self, message: str, *, retryable: bool = True, throttled: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.throttled = throttled
