"""saga-outbox's embeddable transactional outbox: PostgreSQL rows → SQS FIFO.

Write events with :func:`enqueue` inside your own transaction; run a :class:`Relay` (a thread,
a process or a bounded drain) to publish them with deterministic deduplication ids.
"""

from ._aws_errors import DestinationNotFoundError
from .destinations import Destination, InvalidDestinationError, Routes
from .embedded import embedded_postgres_url
from .envelope import OutboxEnvelope, deduplication_id, message_group_id
from .eventbridge import EventBridgePublisher
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
from .kinesis import KinesisPublisher
from .metrics import InMemoryMetrics, MetricsSink, NullMetrics, PowertoolsMetricsSink
from .operations import OutboxStatus, outbox_status, purge_published, retry_dead
from .publisher import BatchOutcome, EntryFailure, NullPublisher, OutboundMessage, Publisher, SqsFifoPublisher
from .relay import DrainResult, Relay, RelayOptions, RelayThread
from .routed import RoutedRelay
from .schema import DEFAULT_DESTINATION, DEFAULT_SCHEMA, migrate, migration_statements, outbox_table
from .sns import SnsFifoPublisher
from .writer import enqueue, enqueue_async, enqueue_many

__all__ = [
    "DEFAULT_DESTINATION",
    "DEFAULT_SCHEMA",
    "AggregateTypeSeparatorError",
    "BatchOutcome",
    "ConfigurationError",
    "CredentialsMissingError",
    "DatabaseError",
    "DatabaseTimeoutError",
    "DatabaseUnavailableError",
    "Destination",
    "DestinationNotFoundError",
    "DrainResult",
    "DuplicateKeyError",
    "EntryFailure",
    "EventBridgePublisher",
    "EventIdConflictError",
    "InMemoryMetrics",
    "InvalidDestinationError",
    "InvalidEventError",
    "InvalidEventIdError",
    "InvalidUnicodeError",
    "KinesisPublisher",
    "MetricsSink",
    "NulCharacterError",
    "NullMetrics",
    "NullPublisher",
    "OutboundMessage",
    "OutboxEnvelope",
    "OutboxError",
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
    "RoutedRelay",
    "Routes",
    "SchemaNameError",
    "SnsFifoPublisher",
    "SqsFifoPublisher",
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
