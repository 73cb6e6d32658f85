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
    "DatabaseError",
    "DatabaseTimeoutError",
    "DatabaseUnavailableError",
    "DuplicateKeyError",
    "EventIdConflictError",
    "InvalidEventError",
    "InvalidEventIdError",
    "InvalidTraceHeaderError",
    "InvalidUnicodeError",
    "NulCharacterError",
    "OutboxError",
    "OutboxTableMissingError",
    "PayloadNotJsonError",
    "PayloadTooDeepError",
    "PayloadTooLargeError",
    "PublishError",
    "QueueNotFifoError",
    "QueueNotFoundError",
    "ReplayDeliveryError",
    "ReplayError",
    "ReplayRunBusyError",
    "ReplayRunMismatchError",
    "SchemaNameError",
    "UnsupportedTargetError",
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


class NulCharacterError(InvalidEventError):
    """A NUL character (``\\x00``) in a payload, a header or a text field: PostgreSQL cannot store it."""


class InvalidUnicodeError(InvalidEventError):
    """A lone surrogate (not encodable as UTF-8), or a character SQS refuses in an attribute."""


class InvalidEventIdError(InvalidEventError):
    """``event_id`` is neither a ``uuid.UUID`` nor the text of one."""


class DuplicateKeyError(PayloadNotJsonError):
    """Two keys of one object are the same JSON key (``1`` and ``"1"``, ``True`` and ``"true"``)."""


class PayloadTooDeepError(PayloadNotJsonError):
    """The payload nests objects/arrays deeper than ``outbox_relay.validation.MAX_DEPTH``."""


class EventIdConflictError(InvalidEventError):
    """The event id is already in the outbox with a different event (type, aggregate, payload or
    headers): a retry must enqueue the same event, a new event needs a new id."""


class InvalidTraceHeaderError(InvalidEventError):
    """A trace header passed to ``enqueue`` (``traceparent`` or ``X-Amzn-Trace-Id``) that SQS
    and Step Functions would not take; an ambient one (OpenTelemetry, ``_X_AMZN_TRACE_ID``) is
    dropped instead, never raised."""


class UnsupportedTargetError(InvalidEventError, TypeError):
    """``enqueue`` was given something it cannot join: an autocommit connection (the row would
    survive the caller's rollback), an async connection (use ``enqueue_async``), or another type."""


class SchemaNameError(ConfigurationError, InvalidEventError):
    """The outbox schema name is invalid, reserved (``pg_*``) or too long for its NOTIFY channel."""


class PayloadTooLargeError(InvalidEventError):
    """The SQS message (body + attributes) would exceed the size limit."""

    def __init__(self, message: str, *, event_id: str, size: int, limit: int) -> None:
        super().__init__(message)
        self.event_id = event_id
        self.size = size
        self.limit = limit


class DatabaseError(OutboxError):
    """A PostgreSQL error, classified once in ``outbox_relay.db``. ``sqlstate`` is the
    SQLSTATE (None when the driver gave none); ``transient`` says whether the same work can
    succeed later unchanged (timeouts, lost connections, failover, deadlocks)."""

    def __init__(self, message: str, *, sqlstate: str | None = None, transient: bool = False) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.transient = transient


class DatabaseUnavailableError(DatabaseError):
    """PostgreSQL could not be reached, refused the connection, or is shutting down / read-only."""


class DatabaseTimeoutError(DatabaseError):
    """A statement or lock wait was cancelled by ``statement_timeout`` or ``lock_timeout``."""


class OutboxTableMissingError(DatabaseError):
    """The outbox table does not exist: run ``saga-outbox outbox migrate``."""


class QueueNotFoundError(OutboxError):
    """The queue URL does not name an existing queue."""


class QueueNotFifoError(OutboxError):
    """The queue exists but is not a FIFO queue."""


class CredentialsMissingError(OutboxError):
    """No AWS credentials were found."""


#: why a whole publish request failed; every cause but ``rejected`` is about the request or the
#: service, never about one entry's content, so it spends no row's attempt.
REQUEST_CAUSES = ("connection", "throttled", "server", "credentials", "permission", "destination", "lease")


class PublishError(OutboxError):
    """A whole publish request failed. ``cause`` is one of :data:`REQUEST_CAUSES` (the relay
    backs off and retries, no attempt spent) or ``"rejected"``: the service refused the request
    as malformed, which the relay narrows down to an entry by sending the entries one by one."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        throttled: bool = False,
        cause: str | None = None,
        maybe_delivered: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.throttled = throttled
        self.cause = cause or ("throttled" if throttled else "connection" if retryable else "rejected")
        self.retryable = retryable and self.cause != "rejected"
        #: the service may have accepted the messages anyway (a read timeout, a 5xx): a later
        #: send is a re-send as far as the dedup window is concerned
        self.maybe_delivered = (
            self.cause in ("server", "connection") if maybe_delivered is None else maybe_delivered
        )

    @property
    def request_level(self) -> bool:
        return self.cause != "rejected"


class ReplayError(OutboxError):
    """A replay (``outbox_relay.replay``) could not start or go on."""


class ReplayRunMismatchError(ReplayError, ConfigurationError):
    """A run id was reused with another selection or destination than the run it names."""


class ReplayRunBusyError(ReplayError):
    """Another process holds this replay run's checkpoint (it is running now)."""


class ReplayDeliveryError(ReplayError):
    """The destination refused events of a page for good; the checkpoint stays before them,
    so the same run resumes from that page."""
