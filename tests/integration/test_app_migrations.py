"""Migrations: the app's own, run in order; and the outbox table definition that Alembic
autogenerate compares must match what the migrations create (indexes and defaults included)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from outbox_relay import migrate, outbox_table
from saga_outbox import SagaApp, Step, Workflow

pytestmark = pytest.mark.integration


def _app() -> SagaApp:
    app = SagaApp("shop")
    app.add(Workflow(name="RoomSaga", steps=[Step(name="BookRoom", action="book_room")]))
    app.action("RoomSaga", "book_room")(lambda ctx: {})
    return app


def test_migrations_run_in_order(engine, schema) -> None:
    app = _app()
    ran: list[str] = []

    @app.migration
    def first(conn) -> None:
        conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        ran.append("first")

    @app.migration
    def second(conn) -> None:
        conn.exec_driver_sql(f'CREATE TABLE IF NOT EXISTS "{schema}".rooms (id int)')
        ran.append("second")

    assert app.migrate(engine) == 2 and app.migrate(engine) == 2
    assert ran == ["first", "second", "first", "second"]


@pytest.mark.filterwarnings("ignore:Did not recognize type .xid8.")  # SQLAlchemy has no xid8 type
def test_outbox_table_declares_what_the_migrations_create(engine, schema) -> None:
    migrate(engine, schema=schema)
    inspector = sa.inspect(engine)
    reflected = {
        ix["name"]: (tuple(ix["column_names"]), ix.get("dialect_options", {}).get("postgresql_where"))
        for ix in inspector.get_indexes("outbox", schema=schema)
        if not ix.get("duplicates_constraint")  # event_id UNIQUE is declared on its column
    }
    declared = {
        ix.name: (
            tuple(c.name for c in ix.columns),
            str(ix.dialect_options["postgresql"]["where"]),
        )
        for ix in outbox_table(schema).indexes
    }
    assert set(declared) == set(reflected)
    for name, (columns, where) in declared.items():
        assert reflected[name][0] == columns, name
        # PostgreSQL prints the predicate back with casts and parentheses
        assert where.replace(" ", "") in str(reflected[name][1]).replace(" ", "").replace("::text", ""), name
    columns = {c["name"]: c for c in inspector.get_columns("outbox", schema=schema)}
    assert set(columns) == {c.name for c in outbox_table(schema).columns}
    assert "pg_current_xact_id" in str(columns["txid"]["default"])
    assert outbox_table(schema).c.txid.server_default is not None


def test_app_enqueue_refuses_an_event_too_large_for_its_workflow_before_sql(engine, schema) -> None:
    """Step Functions takes 256 KiB of input while SQS takes 1 MiB: an event routed to a workflow
    is refused at enqueue, naming the size, with the caller's transaction still usable."""
    from outbox_relay import PayloadTooLargeError

    app = _app()
    app.route("RoomRequested", "RoomSaga")
    limit = app.max_event_bytes("RoomRequested")
    assert 0 < limit < 256 * 1024
    assert app.max_event_bytes("NotRouted") == 1_048_576
    migrate(engine, schema=schema)
    with engine.begin() as conn:
        with pytest.raises(PayloadTooLargeError) as info:
            app.enqueue(
                conn,
                event_type="RoomRequested",
                payload={"blob": "x" * limit},
                aggregate_type="room",
                aggregate_key="1",
                schema=schema,
            )
        assert info.value.limit == limit
        # the transaction is still usable, and a fitting event goes in
        app.enqueue(
            conn,
            event_type="RoomRequested",
            payload={"room": "1"},
            aggregate_type="room",
            aggregate_key="1",
            schema=schema,
        )
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(outbox_table(schema))).scalar_one() == 1
