"""enqueue refuses bad input before any SQL, with a named error, and the caller's transaction
stays usable afterwards (nothing lost, nothing aborted)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa

import outbox_relay.exceptions as errors
from outbox_relay import InvalidEventError, enqueue

pytestmark = pytest.mark.integration


def _enqueue(conn: Any, schema: str, /, **kw: Any) -> uuid.UUID:
    event = {
        "aggregate_type": "order",
        "aggregate_key": "1",
        "event_type": "E",
        "payload": {},
        "schema": schema,
    }
    event.update(kw)
    return enqueue(conn, **event)


def _refused_then_usable(engine: sa.Engine, schema: str, error: str, /, **kw: Any) -> InvalidEventError:
    """enqueue(**kw) raises errors.<error>; then the same transaction enqueues and commits."""
    with engine.connect() as conn:
        with conn.begin():
            with pytest.raises(InvalidEventError) as info:
                _enqueue(conn, schema, **kw)
            kept = _enqueue(conn, schema, payload={"ok": True})
        rows = conn.exec_driver_sql(f'SELECT event_id FROM "{schema}".outbox').scalars().all()
    assert type(info.value).__name__ == error, repr(info.value)
    assert isinstance(info.value, getattr(errors, error))
    assert kept in rows
    return info.value


def test_a_colon_in_the_aggregate_type_is_refused(engine, outbox):
    # "order:eu" + "42" and "order" + "eu:42" would share the MessageGroupId "order:eu:42"
    err = _refused_then_usable(
        engine, outbox, "AggregateTypeSeparatorError", aggregate_type="order:eu", aggregate_key="42"
    )
    assert "'order:eu'" in str(err)
    with engine.begin() as conn:  # the key may contain ":"
        _enqueue(conn, outbox, aggregate_type="order", aggregate_key="eu:42")


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("error", "kw", "named"),
    [
        ("NulCharacterError", {"payload": {"note": "a\x00b"}}, "payload"),
        ("NulCharacterError", {"headers": {"trace": "\x00"}}, "headers"),
        ("NulCharacterError", {"payload": {"k\x00": 1}}, "payload"),
        ("NulCharacterError", {"event_type": "E\x00"}, "event_type"),
        ("InvalidEventIdError", {"event_id": "not-a-uuid"}, "not-a-uuid"),
        ("InvalidEventIdError", {"event_id": 42}, "42"),
        ("PayloadTooLargeError", {"payload": {"v": [1e300] * 3500}}, "bytes"),
        ("DuplicateKeyError", {"payload": {1: "a", "1": "b", "true": "d"}}, "'1'"),
        ("DuplicateKeyError", {"payload": {"x": {None: 1, "null": 2}}}, "'null'"),
        ("DuplicateKeyError", {"payload": {False: 1, "false": 2}}, "'false'"),
        ("InvalidUnicodeError", {"payload": {"s": "\ud800"}}, "payload"),
        ("InvalidUnicodeError", {"aggregate_key": "k\udfff"}, "aggregate_key"),
        ("PayloadTooDeepError", {"payload": _nested(2000)}, "deep"),
        ("SchemaNameError", {"schema": "s" * 51}, "channel"),
        ("SchemaNameError", {"schema": "pg_outbox"}, "pg_"),
    ],
)
def test_bad_input_is_refused_before_sql_with_a_named_error(engine, outbox, error, kw, named):
    err = _refused_then_usable(engine, outbox, error, **kw)
    assert named in str(err)


def test_the_jsonb_size_of_numbers_is_what_is_measured(engine, outbox):
    """jsonb prints 1e300 as 301 digits: the estimate must count them, to the byte."""
    from outbox_relay.validation import jsonb_text_size

    payload = {"v": [1e300, 1.5e-7, 2.0, -0.0, 12345678901234567890], "n": None, "t": True}
    with engine.connect() as conn:
        text = conn.exec_driver_sql(
            "SELECT %(p)s::jsonb::text", {"p": __import__("json").dumps(payload)}
        ).scalar_one()
    assert jsonb_text_size(payload) == len(text.encode())


def test_reusing_an_event_id_with_a_different_payload_raises(engine, outbox):
    eid = uuid.uuid4()
    with engine.begin() as conn:
        _enqueue(conn, outbox, event_id=eid, payload={"amount": 10})
    with engine.begin() as conn:
        assert _enqueue(conn, outbox, event_id=str(eid), payload={"amount": 10}) == eid  # a retry: no-op
    err = _refused_then_usable(engine, outbox, "EventIdConflictError", event_id=eid, payload={"amount": 11})
    assert str(eid) in str(err)
    with engine.connect() as c:
        kept = c.exec_driver_sql(f'SELECT payload FROM "{outbox}".outbox WHERE event_id = %(e)s', {"e": eid})
        assert kept.scalar_one() == {"amount": 10}


def test_migrate_refuses_a_schema_name_too_long_for_the_notify_channel(engine, schema):
    from outbox_relay import migrate
    from outbox_relay.exceptions import SchemaNameError

    with pytest.raises(SchemaNameError, match="channel"):
        migrate(engine, schema="s" * 51)
    with pytest.raises(SchemaNameError, match="pg_"):
        migrate(engine, schema="pg_outbox")
    assert migrate(engine, schema=("s" * 50)) >= 1
    with engine.begin() as conn:
        _enqueue(conn, "s" * 50)
        conn.exec_driver_sql(f'DROP SCHEMA "{"s" * 50}" CASCADE')


def _dsn(database_url: str) -> str:
    return sa.make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def test_an_autocommit_connection_is_refused(engine, database_url, outbox):
    import psycopg

    from outbox_relay.exceptions import UnsupportedTargetError

    with (
        psycopg.connect(_dsn(database_url), autocommit=True) as conn,
        pytest.raises(UnsupportedTargetError, match="autocommit"),
    ):
        _enqueue(conn, outbox)
    with (
        engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn,
        pytest.raises(UnsupportedTargetError, match="autocommit"),
    ):
        _enqueue(conn, outbox)
    with engine.connect() as c:
        assert c.exec_driver_sql(f'SELECT count(*) FROM "{outbox}".outbox').scalar_one() == 0


def test_an_async_connection_is_refused_by_the_sync_enqueue(database_url, outbox):
    import asyncio

    import psycopg

    from outbox_relay.exceptions import UnsupportedTargetError

    async def run() -> None:
        async with await psycopg.AsyncConnection.connect(_dsn(database_url)) as conn:
            with pytest.raises(UnsupportedTargetError, match="enqueue_async"):
                _enqueue(conn, outbox)
            cur = await conn.execute("SELECT 1")  # the connection is untouched and usable
            assert (await cur.fetchone()) == (1,)

    asyncio.run(run())


def test_enqueue_async_joins_a_psycopg_async_transaction(engine, database_url, outbox):
    import asyncio

    import psycopg

    from outbox_relay import enqueue_async

    async def run() -> uuid.UUID:
        async with await psycopg.AsyncConnection.connect(_dsn(database_url)) as conn:
            await enqueue_async(
                conn, aggregate_type="o", aggregate_key="1", event_type="E", payload={}, schema=outbox
            )
            await conn.rollback()
            kept = await enqueue_async(
                conn, aggregate_type="o", aggregate_key="1", event_type="E", payload={"n": 1}, schema=outbox
            )
            with pytest.raises(InvalidEventError):  # refused before SQL: the transaction goes on
                await enqueue_async(
                    conn,
                    aggregate_type="o",
                    aggregate_key="1",
                    event_type="E",
                    payload={"x": "\x00"},
                    schema=outbox,
                )
            await conn.commit()
            return kept

    kept = asyncio.run(run())
    with engine.connect() as c:
        assert c.exec_driver_sql(f'SELECT event_id FROM "{outbox}".outbox').scalars().all() == [kept]


def test_enqueue_async_joins_a_sqlalchemy_async_session(engine, database_url, outbox):
    import asyncio

    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    from outbox_relay import enqueue_async

    async def run() -> uuid.UUID:
        aengine = create_async_engine(sa.make_url(database_url).set(drivername="postgresql+psycopg"))
        try:
            async with AsyncSession(aengine) as session, session.begin():
                return await enqueue_async(
                    session, aggregate_type="o", aggregate_key="2", event_type="E", payload={}, schema=outbox
                )
        finally:
            await aengine.dispose()

    kept = asyncio.run(run())
    with engine.connect() as c:
        assert c.exec_driver_sql(f'SELECT event_id FROM "{outbox}".outbox').scalars().all() == [kept]
