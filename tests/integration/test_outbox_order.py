"""Order per aggregate by construction: writers of one aggregate are serialized inside their own
transactions, so id order is commit order and the relay needs no horizon over other
transactions (nor over other databases of the server)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Sequence

import pytest
import sqlalchemy as sa

from outbox_relay import BatchOutcome, OutboundMessage, Relay, RelayOptions, enqueue

pytestmark = pytest.mark.integration


class Recorder:
    """A publisher that accepts everything and records the seq of each message, in order."""

    max_batch_entries = 10
    max_batch_bytes = 1_048_576

    def __init__(self) -> None:
        self.accepted: list[int] = []

    def check(self) -> None:
        return None

    def publish_batch(self, messages: Sequence[OutboundMessage]) -> BatchOutcome:
        self.accepted.extend(json.loads(m.body)["payload"]["seq"] for m in messages)
        return BatchOutcome(succeeded=[m.row_id for m in messages])


def _ids_by_seq(engine: sa.Engine, schema: str) -> dict[int, int]:
    with engine.connect() as c:
        rows = c.exec_driver_sql(f"SELECT (payload->>'seq')::int, id FROM \"{schema}\".outbox").all()
    return dict(rows)


def test_a_writer_that_started_first_but_enqueues_second_commits_and_publishes_second(engine, outbox):
    """A writes a business row first (older xid), B enqueues first; A's enqueue must wait for B's
    commit, so that for the aggregate: id order == commit order == publish order."""
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE TABLE "{outbox}".business (n int)')
    sink = Recorder()
    relay = Relay(engine=engine, publisher=sink, options=RelayOptions(schema=outbox, listen=False))
    commits: list[int] = []
    a_wrote, b_enqueued, a_done = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def writer_a() -> None:
        try:
            with engine.connect() as conn, conn.begin():
                conn.exec_driver_sql(f'INSERT INTO "{outbox}".business VALUES (1)')
                a_wrote.set()
                b_enqueued.wait(10)
                enqueue(
                    conn,
                    aggregate_type="acct",
                    aggregate_key="a",
                    event_type="E",
                    payload={"seq": 1},
                    schema=outbox,
                )
            commits.append(1)
        except BaseException as exc:  # surfaced in the test thread
            errors.append(exc)
        finally:
            a_done.set()

    thread = threading.Thread(target=writer_a)
    thread.start()
    assert a_wrote.wait(10)
    with engine.connect() as conn_b, conn_b.begin():
        enqueue(
            conn_b,
            aggregate_type="acct",
            aggregate_key="a",
            event_type="E",
            payload={"seq": 0},
            schema=outbox,
        )
        b_enqueued.set()
        a_done.wait(0.5)  # on unserialized writers, A commits here, ahead of B
        relay.run_once()  # a poll between the two commits
        # recorded just before B's commit, A's just after its own: the list shows the
        # commit order whichever thread the scheduler runs first after B's COMMIT
        commits.append(0)
    thread.join(10)
    assert not errors, errors
    relay.drain(max_seconds=5)
    published = sink.accepted
    ids = _ids_by_seq(engine, outbox)
    by_id = sorted(ids, key=ids.__getitem__)
    assert published == commits == by_id, f"published {published}, commits {commits}, id order {by_id}"


def test_an_open_write_transaction_in_another_database_does_not_stop_publishing(engine, database_url, outbox):
    other = f"other_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(database_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{other}"')
    other_engine = sa.create_engine(sa.make_url(database_url).set(database=other), poolclass=sa.pool.NullPool)
    try:
        with other_engine.connect() as long_running:
            txn = long_running.begin()
            long_running.exec_driver_sql("CREATE TABLE t (n int)")  # holds an xid, stays open
            with engine.begin() as conn:
                enqueue(
                    conn,
                    aggregate_type="acct",
                    aggregate_key="a",
                    event_type="E",
                    payload={"seq": 0},
                    schema=outbox,
                )
            sink = Recorder()
            relay = Relay(engine=engine, publisher=sink, options=RelayOptions(schema=outbox, listen=False))
            started = time.monotonic()
            result = relay.drain(max_seconds=3)
            txn.rollback()
        assert result.published == 1, "an open transaction of another database held publishing back"
        assert time.monotonic() - started < 3
    finally:
        other_engine.dispose()
        with admin.connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{other}" WITH (FORCE)')
        admin.dispose()


def test_enqueue_many_takes_its_group_locks_in_sorted_order(engine, database_url, outbox):
    """T1 holds acct:b. T2 enqueues [b, a] with enqueue_many: sorted, it locks a first and then
    waits for b (in the given order it would wait for b holding nothing). A third writer of
    acct:a therefore finds a taken while T2 waits: every writer takes locks in one order, so no
    two can each hold what the other waits for."""
    from sqlalchemy import exc as sa_exc

    from outbox_relay import enqueue_many

    def event(key: str, seq: int) -> dict[str, object]:
        return {"aggregate_type": "acct", "aggregate_key": key, "event_type": "E", "payload": {"seq": seq}}

    t1 = engine.connect()
    tx1 = t1.begin()
    enqueue(t1, schema=outbox, **event("b", 0))  # type: ignore[arg-type]
    done = threading.Event()

    def t2() -> None:
        with engine.begin() as conn:
            enqueue_many(conn, [event("b", 1), event("a", 1)], schema=outbox)
        done.set()

    waiter = threading.Thread(target=t2)
    waiter.start()
    time.sleep(0.3)
    assert not done.is_set()
    impatient = sa.create_engine(database_url, connect_args={"options": "-c lock_timeout=200ms"})
    try:
        with impatient.begin() as conn, pytest.raises(sa_exc.OperationalError, match="lock timeout"):
            enqueue(conn, schema=outbox, **event("a", 2))  # type: ignore[arg-type]
    finally:
        impatient.dispose()
        tx1.commit()
        t1.close()
        waiter.join(10)
    assert done.is_set()
    with engine.connect() as c:
        rows = c.exec_driver_sql(
            f"SELECT aggregate_key, payload->>'seq' FROM \"{outbox}\".outbox ORDER BY id"
        )
        assert [tuple(r) for r in rows] == [("b", "0"), ("b", "1"), ("a", "1")]
