"""Tables of the reference order domain (SQLAlchemy Core), in a configurable schema.

Nothing is created on import: call :func:`migrate_orders` explicitly (the local runtime, a
deployment step or a test does). Every business effect of a saga step is one row guarded by
a UNIQUE idempotency key, so a repeated step cannot repeat the effect.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

__all__ = ["DEFAULT_ORDERS_SCHEMA", "OrderTables", "migrate_orders", "order_tables"]

DEFAULT_ORDERS_SCHEMA = "orders"
ORDER_STATUSES = ("PENDING", "CONFIRMED", "CANCELLED")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def _created_at() -> sa.Column[object]:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


@dataclass(frozen=True)
class OrderTables:
    schema: str
    metadata: sa.MetaData
    orders: sa.Table
    inventory_reservations: sa.Table
    payments: sa.Table
    shipments: sa.Table
    order_view: sa.Table
    order_view_events: sa.Table
    notifications: sa.Table
    command_requests: sa.Table


@functools.cache
def order_tables(schema: str = DEFAULT_ORDERS_SCHEMA) -> OrderTables:
    """The table objects for ``schema`` (built once per schema name, no database access)."""
    if not _IDENTIFIER.match(schema):
        raise ValueError(f"schema must be a SQL identifier, got {schema!r}")
    md = sa.MetaData(schema=schema)
    orders = sa.Table(
        "orders",
        md,
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("items", pg.JSONB, nullable=False),
        sa.Column("amount_cents", sa.BigInteger, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="PENDING"),
        _created_at(),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.CheckConstraint("amount_cents >= 0", name="orders_amount_nonnegative"),
        sa.CheckConstraint(f"status IN {ORDER_STATUSES!r}", name="orders_status_valid"),
    )
    order_fk = functools.partial(sa.ForeignKey, orders.c.id)
    reservations = sa.Table(
        "inventory_reservations",
        md,
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("idempotency_key", sa.Text, nullable=False, unique=True),
        sa.Column("execution_name", sa.Text, nullable=False, index=True),
        sa.Column("order_id", pg.UUID(as_uuid=True), order_fk(), nullable=False, index=True),
        sa.Column("sku", sa.Text, nullable=False),
        sa.Column("qty", sa.Integer, nullable=False),
        _created_at(),
        sa.Column("released_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("qty > 0", name="inventory_reservations_qty_positive"),
    )
    payments = sa.Table(
        "payments",
        md,
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("idempotency_key", sa.Text, nullable=False, unique=True),
        sa.Column("execution_name", sa.Text, nullable=False, index=True),
        sa.Column("order_id", pg.UUID(as_uuid=True), order_fk(), nullable=False, index=True),
        sa.Column("amount_cents", sa.BigInteger, nullable=False),
        _created_at(),
        sa.Column("refunded_at", sa.DateTime(timezone=True)),
        sa.Column("refund_idempotency_key", sa.Text, unique=True),
    )
    shipments = sa.Table(
        "shipments",
        md,
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("idempotency_key", sa.Text, nullable=False, unique=True),
        sa.Column("execution_name", sa.Text, nullable=False, index=True),
        sa.Column("order_id", pg.UUID(as_uuid=True), order_fk(), nullable=False, index=True),
        sa.Column("tracking_number", sa.Text, nullable=False),
        _created_at(),
        sa.Column("cancelled_at", sa.DateTime(timezone=True)),  # compensated (cancel_shipment)
    )
    order_view = sa.Table(
        "order_view",
        md,
        sa.Column("order_id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("customer_id", sa.Text),
        sa.Column("amount_cents", sa.BigInteger),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("last_event_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    order_view_events = sa.Table(
        "order_view_events",
        md,
        sa.Column("event_id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("order_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("applied", sa.Boolean, nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    notifications = sa.Table(
        "notifications",
        md,
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("event_id", pg.UUID(as_uuid=True), nullable=False, unique=True),
        sa.Column("order_id", pg.UUID(as_uuid=True), nullable=False, index=True),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        _created_at(),
    )
    command_requests = sa.Table(
        "command_requests",
        md,
        sa.Column("idempotency_key", sa.Text, primary_key=True),
        sa.Column("request_hash", sa.Text, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("response", pg.JSONB, nullable=False),
        sa.Column("order_id", pg.UUID(as_uuid=True)),
        _created_at(),
    )
    return OrderTables(
        schema=schema,
        metadata=md,
        orders=orders,
        inventory_reservations=reservations,
        payments=payments,
        shipments=shipments,
        order_view=order_view,
        order_view_events=order_view_events,
        notifications=notifications,
        command_requests=command_requests,
    )


def migrate_orders(bind: sa.Engine | sa.Connection | str, *, schema: str = DEFAULT_ORDERS_SCHEMA) -> None:
    """Create the schema and the order tables if missing (idempotent, safe to run concurrently).

    ``bind``: an Engine or URL (a transaction is opened and committed here) or a Connection
    (the DDL joins its transaction; the caller commits)."""
    tables = order_tables(schema)
    if isinstance(bind, str):
        from outbox_relay.embedded import sqlalchemy_url

        engine = sa.create_engine(sqlalchemy_url(bind))
        try:
            migrate_orders(engine, schema=schema)
        finally:
            engine.dispose()
        return
    if isinstance(bind, sa.Engine):
        with bind.begin() as conn:
            _migrate(conn, tables)
        return
    _migrate(bind, tables)


def _migrate(conn: sa.Connection, tables: OrderTables) -> None:
    # Serialize concurrent migrations of the same schema (CREATE ... IF NOT EXISTS races).
    conn.execute(
        sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(f"examples.orders.migrate:{tables.schema}")))
    )
    conn.execute(sa.schema.CreateSchema(tables.schema, if_not_exists=True))
    tables.metadata.create_all(conn, checkfirst=True)
    # create_all adds no column to a table that exists: schemas from before cancel_shipment
    conn.exec_driver_sql(
        f'ALTER TABLE "{tables.schema}".shipments ADD COLUMN IF NOT EXISTS cancelled_at timestamptz'
    )
