"""The outbox table as SQLAlchemy Core (for Alembic and for readers) and its explicit migrations.

Nothing here runs DDL on import: :func:`migrate` (or ``saga-outbox outbox migrate``) does, once.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from .exceptions import SchemaNameError

__all__ = [
    "DEFAULT_DESTINATION",
    "DEFAULT_SCHEMA",
    "MIGRATIONS",
    "migrate",
    "migration_statements",
    "outbox_table",
]

DEFAULT_SCHEMA = "saga_outbox"
#: the destination of every row written before routing existed, and of every unrouted event:
#: the SQS FIFO queue the relay's default publisher sends to
DEFAULT_DESTINATION = "sqs"
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# The NOTIFY channel is "saga_outbox__<schema>" and PostgreSQL names hold 63 bytes: a longer
# schema passes CREATE SCHEMA but makes every enqueue's pg_notify fail.
_CHANNEL_PREFIX = "saga_outbox__"
MAX_SCHEMA_LENGTH = 63 - len(_CHANNEL_PREFIX)


def check_schema(schema: str) -> str:
    if not isinstance(schema, str) or not _IDENT.match(schema):
        raise SchemaNameError(
            f"schema name {schema!r} is invalid: use 1-{MAX_SCHEMA_LENGTH} lower-case letters, "
            "digits and underscores"
        )
    if len(schema) > MAX_SCHEMA_LENGTH:
        raise SchemaNameError(
            f"schema name {schema!r} is {len(schema)} characters: at most {MAX_SCHEMA_LENGTH}, so that "
            f"its NOTIFY channel name ({_CHANNEL_PREFIX}<schema>) fits PostgreSQL's 63"
        )
    if schema.startswith("pg_"):
        raise SchemaNameError(
            f"schema name {schema!r} is reserved: PostgreSQL refuses names starting with pg_"
        )
    return schema


def notify_channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel the relay of ``schema`` wakes on."""
    return f"{_CHANNEL_PREFIX}{schema}"


def outbox_table(schema: str = DEFAULT_SCHEMA, metadata: sa.MetaData | None = None) -> sa.Table:
    """The table definition, for queries, Alembic autogenerate comparisons and documentation."""
    check_schema(schema)
    return sa.Table(
        "outbox",
        metadata if metadata is not None else sa.MetaData(),
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("event_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("aggregate_type", sa.Text, nullable=False),
        sa.Column("aggregate_key", sa.Text, nullable=False),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("payload", pg.JSONB, nullable=False),
        sa.Column("headers", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("available_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("published_at", sa.DateTime(timezone=True)),
        sa.Column("first_sent_at", sa.DateTime(timezone=True)),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("send_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text),
        sa.Column("state", sa.Text, nullable=False, server_default="pending"),
        sa.Column("lease_owner", sa.Text),
        sa.Column("lease_token", sa.BigInteger),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True)),
        # xid8 in the database (SQLAlchemy has no type for it)
        # unused: per-aggregate order comes from the writer's group lock (writer.py)
        sa.Column("txid", sa.Text, nullable=False, server_default=sa.text("pg_current_xact_id()")),
        # migration 2: one row per (event, destination), each published and marked on its own
        sa.Column("destination", sa.Text, nullable=False, server_default=DEFAULT_DESTINATION),
        sa.UniqueConstraint("event_id", "destination", name="outbox_event_destination_key"),
        sa.CheckConstraint("state IN ('pending', 'published', 'dead')", name="outbox_state_check"),
        # the partial indexes the migrations create, so that Alembic autogenerate keeps them
        sa.Index("outbox_pending_idx", "id", postgresql_where=sa.text("state = 'pending'")),
        sa.Index(
            "outbox_group_idx",
            "aggregate_type",
            "aggregate_key",
            "id",
            postgresql_where=sa.text("state = 'pending'"),
        ),
        sa.Index("outbox_published_idx", "published_at", postgresql_where=sa.text("state = 'published'")),
        sa.Index("outbox_dead_idx", "id", postgresql_where=sa.text("state = 'dead'")),
        sa.Index(
            "outbox_destination_pending_idx",
            "destination",
            "id",
            postgresql_where=sa.text("state = 'pending'"),
        ),
        schema=schema,
    )


# Each migration is (version, statements); {s} is the quoted schema. Append, never edit.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            """CREATE TABLE {s}.outbox (
                id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                event_id uuid NOT NULL UNIQUE,
                aggregate_type text NOT NULL,
                aggregate_key text NOT NULL,
                event_type text NOT NULL,
                payload jsonb NOT NULL,
                headers jsonb NOT NULL DEFAULT '{{}}'::jsonb,
                created_at timestamptz NOT NULL DEFAULT now(),
                available_at timestamptz NOT NULL DEFAULT now(),
                published_at timestamptz,
                first_sent_at timestamptz,
                attempts integer NOT NULL DEFAULT 0,
                send_count integer NOT NULL DEFAULT 0,
                last_error text,
                state text NOT NULL DEFAULT 'pending'
                    CONSTRAINT outbox_state_check CHECK (state IN ('pending', 'published', 'dead')),
                lease_owner text,
                lease_token bigint,
                lease_expires_at timestamptz,
                -- the writing transaction's id: rows of transactions still in flight below it
                -- could commit later with a smaller id, so the relay waits for the horizon
                txid xid8 NOT NULL DEFAULT pg_current_xact_id()
            )""",
            "CREATE INDEX outbox_pending_idx ON {s}.outbox (id) WHERE state = 'pending'",
            "CREATE INDEX outbox_group_idx ON {s}.outbox (aggregate_type, aggregate_key, id)"
            " WHERE state = 'pending'",
            "CREATE INDEX outbox_published_idx ON {s}.outbox (published_at) WHERE state = 'published'",
            "CREATE INDEX outbox_dead_idx ON {s}.outbox (id) WHERE state = 'dead'",
            "CREATE SEQUENCE {s}.outbox_lease_seq",
            "CREATE TABLE {s}.outbox_archive (LIKE {s}.outbox INCLUDING DEFAULTS)",
        ),
    ),
    (
        2,
        (
            # One row per replay run (outbox_relay.replay): the last row id it delivered,
            # advanced in the transaction that records the delivery, so a resumed run (same
            # run_id) starts after it. selection/destination pin what the run replays.
            """CREATE TABLE {s}.replay_checkpoints (
                run_id text PRIMARY KEY,
                selection jsonb NOT NULL,
                destination text NOT NULL,
                last_id bigint NOT NULL DEFAULT 0,
                replayed bigint NOT NULL DEFAULT 0,
                started_at timestamptz NOT NULL DEFAULT now(),
                updated_at timestamptz NOT NULL DEFAULT now(),
                finished_at timestamptz
            )""",
            # replay pages the archive by id (keyset), merged with the live table's primary key
            "CREATE INDEX outbox_archive_id_idx ON {s}.outbox_archive (id)",
        ),
    ),
    (
        # Destinations (docs/destinations.md): an event routed to n destinations is n rows, so
        # each destination is claimed, published, retried and marked on its own. Existing rows
        # and unrouted events go to 'sqs', the queue the relay always published to.
        3,
        (
            "ALTER TABLE {s}.outbox ADD COLUMN destination text NOT NULL DEFAULT 'sqs'",
            "ALTER TABLE {s}.outbox_archive ADD COLUMN destination text NOT NULL DEFAULT 'sqs'",
            "ALTER TABLE {s}.outbox DROP CONSTRAINT outbox_event_id_key",
            "ALTER TABLE {s}.outbox ADD CONSTRAINT outbox_event_destination_key"
            " UNIQUE (event_id, destination)",
            # the claim scans one destination's pending rows in id order
            "CREATE INDEX outbox_destination_pending_idx ON {s}.outbox (destination, id)"
            " WHERE state = 'pending'",
        ),
    ),
)


def migration_statements(schema: str = DEFAULT_SCHEMA, *, from_version: int = 0) -> list[str]:
    """The SQL of every migration after ``from_version``, for Alembic ``op.execute`` or review."""
    quoted = f'"{check_schema(schema)}"'
    return [
        stmt.format(s=quoted) for version, stmts in MIGRATIONS if version > from_version for stmt in stmts
    ]


def migrate(bind: Any, *, schema: str = DEFAULT_SCHEMA) -> int:
    """Create or upgrade the outbox tables; safe to run concurrently and repeatedly.

    ``bind`` is a SQLAlchemy Engine, Connection or URL. With a Connection the caller owns the
    transaction (nothing is committed here); otherwise a transaction is opened and committed.
    Returns the schema version now in place.
    """
    from .db import connect_engine

    if isinstance(bind, sa.Connection):
        return _migrate(bind, schema)
    engine, owned = connect_engine(bind)
    try:
        with engine.begin() as conn:
            return _migrate(conn, schema)
    finally:
        if owned:
            engine.dispose()


def _migrate(conn: sa.Connection, schema: str) -> int:
    quoted = f'"{check_schema(schema)}"'
    # Serialize concurrent migrators (several app instances starting at once).
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"saga_outbox:{schema}"})
    conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
    conn.exec_driver_sql(
        f"CREATE TABLE IF NOT EXISTS {quoted}.outbox_migrations "
        "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    current = conn.exec_driver_sql(
        f"SELECT coalesce(max(version), 0) FROM {quoted}.outbox_migrations"
    ).scalar_one()
    for version, statements in MIGRATIONS:
        if version <= current:
            continue
        for stmt in statements:
            conn.exec_driver_sql(stmt.format(s=quoted))
        conn.exec_driver_sql(f"INSERT INTO {quoted}.outbox_migrations (version) VALUES ({version})")
        current = version
    return int(current)
