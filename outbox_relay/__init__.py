"""saga-outbox's embeddable transactional outbox: PostgreSQL rows → SQS FIFO.

Write events with :func:`enqueue` inside your own transaction; run a :class:`Relay` (a thread,
a process or a bounded drain) to publish them with deterministic deduplication ids.
"""

from .dynamodb import DynamoDbOutbox, OutboxEvent, TransactionCancelledError
from .embedded import embedded_postgres_url
from .envelope import OutboxEnvelope, deduplication_id, message_group_id
from .exceptions import (
    AggregateTypeSeparatorError,
    ConfigurationError,
    CredentialsMissingError,
    DatabaseError,
    DatabaseTimeoutError,
    DatabaseUnavailableError,
    DuplicateKeyError,
    EventIdConflictError,
    InvalidEventError,
    InvalidEventIdError,
    InvalidUnicodeError,
    NulCharacterError,
    OutboxError,
    OutboxTableMissingError,
    PayloadNotJsonError,
    PayloadTooDeepError,
    PayloadTooLargeError,
    PublishError,
    QueueNotFifoError,
    QueueNotFoundError,
    SchemaNameError,
    UnsupportedTargetError,
)
from .metrics import InMemoryMetrics, MetricsSink, NullMetrics, PowertoolsMetricsSink
from .operations import OutboxStatus, outbox_status, purge_published, retry_dead
from .publisher import BatchOutcome, EntryFailure, NullPublisher, OutboundMessage, Publisher, SqsFifoPublisher
from .relay import DrainResult, Relay, RelayOptions, RelayThread
from .schema import DEFAULT_SCHEMA, migrate, migration_statements, outbox_table
from .writer import enqueue, enqueue_async, enqueue_many

__all__ = [
    "DEFAULT_SCHEMA",
    "AggregateTypeSeparatorError",
    "BatchOutcome",
    "ConfigurationError",
    "CredentialsMissingError",
    "DatabaseError",
    "DatabaseTimeoutError",
    "DatabaseUnavailableError",
    "DrainResult",
    "DuplicateKeyError",
    "DynamoDbOutbox",
    "EntryFailure",
    "EventIdConflictError",
    "InMemoryMetrics",
    "InvalidEventError",
    "InvalidEventIdError",
    "InvalidUnicodeError",
    "MetricsSink",
    "NulCharacterError",
    "NullMetrics",
    "NullPublisher",
    "OutboundMessage",
    "OutboxEnvelope",
    "OutboxError",
    "OutboxEvent",
    "OutboxStatus",
    "OutboxTableMissingError",
    "PayloadNotJsonError",
    "PayloadTooDeepError",
    "PayloadTooLargeError",
    "PowertoolsMetricsSink",
    "PublishError",
    "Publisher",
    "QueueNotFifoError",
    "QueueNotFoundError",
    "Relay",
    "RelayOptions",
    "RelayThread",
    "SchemaNameError",
    "SqsFifoPublisher",
    "TransactionCancelledError",
    "UnsupportedTargetError",
    "deduplication_id",
    "embedded_postgres_url",
    "enqueue",
    "enqueue_async",
    "enqueue_many",
    "message_group_id",
    "migrate",
    "migration_statements",
    "outbox_status",
    "outbox_table",
    "purge_published",
    "retry_dead",
]
