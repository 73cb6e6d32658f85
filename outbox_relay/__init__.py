"""saga-outbox's embeddable transactional outbox: PostgreSQL rows → SQS FIFO.

Write events with :func:`enqueue` inside your own transaction; run a :class:`Relay` (a thread,
a process or a bounded drain) to publish them with deterministic deduplication ids.

Names resolve lazily (PEP 562): a Lambda handler that needs only the envelope or the
exceptions does not pay for SQLAlchemy, and ``import outbox_relay`` costs next to nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from saga_outbox._lazy import lazy_exports

if TYPE_CHECKING:
    from ._aws_errors import DestinationNotFoundError
    from .destinations import Destination, InvalidDestinationError, Routes
    from .dynamodb import DynamoDbOutbox, OutboxEvent, TransactionCancelledError
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
        InvalidTraceHeaderError,
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
    from .publisher import (
        BatchOutcome,
        EntryFailure,
        NullPublisher,
        OutboundMessage,
        Publisher,
        SqsFifoPublisher,
    )
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
    "DynamoDbOutbox",
    "EntryFailure",
    "EventBridgePublisher",
    "EventIdConflictError",
    "InMemoryMetrics",
    "InvalidDestinationError",
    "InvalidEventError",
    "InvalidEventIdError",
    "InvalidTraceHeaderError",
    "InvalidUnicodeError",
    "KinesisPublisher",
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
    "RoutedRelay",
    "Routes",
    "SchemaNameError",
    "SnsFifoPublisher",
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

_EXPORTS = {
    "AggregateTypeSeparatorError": "outbox_relay.exceptions",
    "BatchOutcome": "outbox_relay.publisher",
    "ConfigurationError": "outbox_relay.exceptions",
    "CredentialsMissingError": "outbox_relay.exceptions",
    "DEFAULT_DESTINATION": "outbox_relay.schema",
    "DEFAULT_SCHEMA": "outbox_relay.schema",
    "DatabaseError": "outbox_relay.exceptions",
    "DatabaseTimeoutError": "outbox_relay.exceptions",
    "DatabaseUnavailableError": "outbox_relay.exceptions",
    "Destination": "outbox_relay.destinations",
    "DestinationNotFoundError": "outbox_relay._aws_errors",
    "DrainResult": "outbox_relay.relay",
    "DuplicateKeyError": "outbox_relay.exceptions",
    "DynamoDbOutbox": "outbox_relay.dynamodb",
    "EntryFailure": "outbox_relay.publisher",
    "EventBridgePublisher": "outbox_relay.eventbridge",
    "EventIdConflictError": "outbox_relay.exceptions",
    "InMemoryMetrics": "outbox_relay.metrics",
    "InvalidDestinationError": "outbox_relay.destinations",
    "InvalidEventError": "outbox_relay.exceptions",
    "InvalidEventIdError": "outbox_relay.exceptions",
    "InvalidTraceHeaderError": "outbox_relay.exceptions",
    "InvalidUnicodeError": "outbox_relay.exceptions",
    "KinesisPublisher": "outbox_relay.kinesis",
    "MetricsSink": "outbox_relay.metrics",
    "NulCharacterError": "outbox_relay.exceptions",
    "NullMetrics": "outbox_relay.metrics",
    "NullPublisher": "outbox_relay.publisher",
    "OutboundMessage": "outbox_relay.publisher",
    "OutboxEnvelope": "outbox_relay.envelope",
    "OutboxError": "outbox_relay.exceptions",
    "OutboxEvent": "outbox_relay.dynamodb",
    "OutboxStatus": "outbox_relay.operations",
    "OutboxTableMissingError": "outbox_relay.exceptions",
    "PayloadNotJsonError": "outbox_relay.exceptions",
    "PayloadTooDeepError": "outbox_relay.exceptions",
    "PayloadTooLargeError": "outbox_relay.exceptions",
    "PowertoolsMetricsSink": "outbox_relay.metrics",
    "PublishError": "outbox_relay.exceptions",
    "Publisher": "outbox_relay.publisher",
    "QueueNotFifoError": "outbox_relay.exceptions",
    "QueueNotFoundError": "outbox_relay.exceptions",
    "Relay": "outbox_relay.relay",
    "RelayOptions": "outbox_relay.relay",
    "RelayThread": "outbox_relay.relay",
    "RoutedRelay": "outbox_relay.routed",
    "Routes": "outbox_relay.destinations",
    "SchemaNameError": "outbox_relay.exceptions",
    "SnsFifoPublisher": "outbox_relay.sns",
    "SqsFifoPublisher": "outbox_relay.publisher",
    "TransactionCancelledError": "outbox_relay.dynamodb",
    "UnsupportedTargetError": "outbox_relay.exceptions",
    "deduplication_id": "outbox_relay.envelope",
    "embedded_postgres_url": "outbox_relay.embedded",
    "enqueue": "outbox_relay.writer",
    "enqueue_async": "outbox_relay.writer",
    "enqueue_many": "outbox_relay.writer",
    "message_group_id": "outbox_relay.envelope",
    "migrate": "outbox_relay.schema",
    "migration_statements": "outbox_relay.schema",
    "outbox_status": "outbox_relay.operations",
    "outbox_table": "outbox_relay.schema",
    "purge_published": "outbox_relay.operations",
    "retry_dead": "outbox_relay.operations",
}
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
