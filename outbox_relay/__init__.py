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
    from .publisher import (
        BatchOutcome,
        EntryFailure,
        NullPublisher,
        OutboundMessage,
        Publisher,
        SqsFifoPublisher,
    )
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
    "embedded_postgres_url": "outbox_relay.embedded",
    "OutboxEnvelope": "outbox_relay.envelope",
    "deduplication_id": "outbox_relay.envelope",
    "message_group_id": "outbox_relay.envelope",
    "AggregateTypeSeparatorError": "outbox_relay.exceptions",
    "ConfigurationError": "outbox_relay.exceptions",
    "CredentialsMissingError": "outbox_relay.exceptions",
    "DatabaseError": "outbox_relay.exceptions",
    "DatabaseTimeoutError": "outbox_relay.exceptions",
    "DatabaseUnavailableError": "outbox_relay.exceptions",
    "DuplicateKeyError": "outbox_relay.exceptions",
    "EventIdConflictError": "outbox_relay.exceptions",
    "InvalidEventError": "outbox_relay.exceptions",
    "InvalidEventIdError": "outbox_relay.exceptions",
    "InvalidUnicodeError": "outbox_relay.exceptions",
    "NulCharacterError": "outbox_relay.exceptions",
    "OutboxError": "outbox_relay.exceptions",
    "OutboxTableMissingError": "outbox_relay.exceptions",
    "PayloadNotJsonError": "outbox_relay.exceptions",
    "PayloadTooDeepError": "outbox_relay.exceptions",
    "PayloadTooLargeError": "outbox_relay.exceptions",
    "PublishError": "outbox_relay.exceptions",
    "QueueNotFifoError": "outbox_relay.exceptions",
    "QueueNotFoundError": "outbox_relay.exceptions",
    "SchemaNameError": "outbox_relay.exceptions",
    "UnsupportedTargetError": "outbox_relay.exceptions",
    "InMemoryMetrics": "outbox_relay.metrics",
    "MetricsSink": "outbox_relay.metrics",
    "NullMetrics": "outbox_relay.metrics",
    "PowertoolsMetricsSink": "outbox_relay.metrics",
    "OutboxStatus": "outbox_relay.operations",
    "outbox_status": "outbox_relay.operations",
    "purge_published": "outbox_relay.operations",
    "retry_dead": "outbox_relay.operations",
    "BatchOutcome": "outbox_relay.publisher",
    "EntryFailure": "outbox_relay.publisher",
    "NullPublisher": "outbox_relay.publisher",
    "OutboundMessage": "outbox_relay.publisher",
    "Publisher": "outbox_relay.publisher",
    "SqsFifoPublisher": "outbox_relay.publisher",
    "DrainResult": "outbox_relay.relay",
    "Relay": "outbox_relay.relay",
    "RelayOptions": "outbox_relay.relay",
    "RelayThread": "outbox_relay.relay",
    "DEFAULT_SCHEMA": "outbox_relay.schema",
    "migrate": "outbox_relay.schema",
    "migration_statements": "outbox_relay.schema",
    "outbox_table": "outbox_relay.schema",
    "enqueue": "outbox_relay.writer",
    "enqueue_async": "outbox_relay.writer",
    "enqueue_many": "outbox_relay.writer",
}
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
