"""Several relays at once, locked heads, open transactions and SIGTERM: order and no double send."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import pytest
import sqlalchemy as sa

from outbox_relay import BatchOutcome, OutboundMessage, Relay, RelayOptions, enqueue

pytestmark = pytest.mark.integration


class FifoModel:
    """A publisher that behaves like an SQS FIFO endpoint for ordering purposes: each call takes
    a random 1-15 ms and entries are accepted in call-completion order. It records every
    acceptance and flags two relays sending the same row at overlapping times."""

    max_batch_entries = 10
    max_batch_bytes = 1_048_576

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.accepted: list[tuple[str, int]] = []
        self.in_flight: set[int] = set()
        self.overlaps: list[int] = []

    def check(self) -> None:
        return None

    def publish_batch(self, messages: Sequence[OutboundMessage]) -> BatchOutcome:
        import json

        with self._lock:
            for m in messages:
                if m.row_id in self.in_flight:
                    self.overlaps.append(m.row_id)
                self.in_flight.add(m.row_id)
            delay = self._rng.uniform(0.001, 0.015)
        time.sleep(delay)
        with self._lock:
            for m in messages:
                self.accepted.append((m.group_id, json.loads(m.body)["payload"]["seq"]))
                self.in_flight.discard(m.row_id)
        return BatchOutcome(succeeded=[m.row_id for m in messages])


def _fill(engine: sa.Engine, schema: str, groups: int, per_group: int) -> None:
    with engine.begin() as conn:
        for seq in range(per_group):
            for g in range(groups):
                enqueue(
                    conn,
                    aggregate_type="acct",
                    aggregate_key=f"g{g}",
                    event_type="E",
                    payload={"seq": seq},
                    schema=schema,
                )


def _run_relays(
    engine: sa.Engine, schema: str, sink: FifoModel, n: int, stop: threading.Event, **opts: Any
) -> list[threading.Thread]:
    threads = []
    for i in range(n):
        relay = Relay(
            engine=engine,
            publisher=sink,
            options=RelayOptions(
                schema=schema,
                listen=False,
                poll_interval_seconds=0.02,
                relay_id=f"r{i}",
                claim_size=40,
                concurrency=4,
                **opts,
            ),
        )
        t = threading.Thread(target=relay.run_forever, args=(stop,), daemon=True)
        t.start()
        threads.append(t)
    return threads


def _pending(engine: sa.Engine, schema: str, where: str = "true") -> int:
    with engine.connect() as c:
        return int(
            c.exec_driver_sql(
                f"SELECT count(*) FROM \"{schema}\".outbox WHERE state = 'pending' AND {where}"
            ).scalar_one()
        )


@pytest.mark.parametrize("rows_per_group", [1, 5])
def test_three_relays_keep_order_per_aggregate_while_a_head_is_locked(engine, outbox, rows_per_group):
    _fill(engine, outbox, groups=12, per_group=15)
    sink = FifoModel(seed=rows_per_group)
    stop = threading.Event()
    locker = engine.connect()
    txn = locker.begin()
    # another transaction holds the head of g3 (e.g. an operator's UPDATE in progress)
    locker.exec_driver_sql(
        f"SELECT id FROM \"{outbox}\".outbox WHERE aggregate_key = 'g3' ORDER BY id LIMIT 1 FOR UPDATE"
    )
    threads = _run_relays(engine, outbox, sink, 3, stop, rows_per_group=rows_per_group)
    try:
        deadline = time.monotonic() + 30
        while _pending(engine, outbox, "aggregate_key <> 'g3'") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _pending(engine, outbox, "aggregate_key <> 'g3'") == 0, "other groups were blocked"
        assert _pending(engine, outbox, "aggregate_key = 'g3'") == 15, "a locked head must block its group"
        txn.rollback()
        locker.close()
        while _pending(engine, outbox) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert _pending(engine, outbox) == 0
    by_group: dict[str, list[int]] = defaultdict(list)
    for group, seq in sink.accepted:
        by_group[group].append(seq)
    assert len(by_group) == 12
    for group, seqs in by_group.items():
        assert seqs == list(range(15)), f"{group} out of order or duplicated: {seqs}"
    assert sink.overlaps == []


def test_two_relays_never_send_the_same_row_at_once(engine, outbox):
    _fill(engine, outbox, groups=40, per_group=5)
    sink = FifoModel(seed=3)
    stop = threading.Event()
    threads = _run_relays(engine, outbox, sink, 2, stop)
    deadline = time.monotonic() + 30
    while _pending(engine, outbox) and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(10)
    assert len(sink.accepted) == 200 == len(set(sink.accepted))
    assert sink.overlaps == []


def test_writers_of_one_aggregate_wait_for_each_other_and_others_do_not(engine, outbox):
    """T1 takes an id first but commits last: T3 (same aggregate) waits on T1's group lock, so
    it draws its id only after T1 committed; T2 (another aggregate) does not wait at all."""
    sink = FifoModel(seed=1)
    relay = Relay(engine=engine, publisher=sink, options=RelayOptions(schema=outbox, listen=False))
    t1 = engine.connect()
    tx1 = t1.begin()
    enqueue(t1, aggregate_type="acct", aggregate_key="a", event_type="E", payload={"seq": 0}, schema=outbox)
    with engine.begin() as t2:  # would hang here if the lock covered every aggregate
        enqueue(
            t2, aggregate_type="acct", aggregate_key="b", event_type="E", payload={"seq": 0}, schema=outbox
        )
    done = threading.Event()

    def t3() -> None:
        with engine.begin() as conn:
            enqueue(
                conn,
                aggregate_type="acct",
                aggregate_key="a",
                event_type="E",
                payload={"seq": 1},
                schema=outbox,
            )
        done.set()

    waiter = threading.Thread(target=t3)
    waiter.start()
    assert not done.wait(0.5), "a second writer of the aggregate did not wait for the first"
    assert relay.run_once() == 1  # acct:b only; nothing of acct:a is committed yet
    tx1.commit()
    t1.close()
    waiter.join(10)
    assert done.is_set()
    relay.drain(max_seconds=5)
    assert [s for g, s in sink.accepted if g == "acct:a"] == [0, 1]


def test_sigterm_finishes_in_flight_batches_then_exits(engine, database_url, outbox, aws_env):
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
        queue_url = sqs.create_queue(QueueName="term.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        _fill(engine, outbox, groups=50, per_group=8)
        env = dict(os.environ, AWS_DEFAULT_REGION="us-east-1")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "outbox_relay.cli",
                "relay",
                "--database-url",
                database_url,
                "--schema",
                outbox,
                "--queue-url",
                queue_url,
                "--endpoint-url",
                endpoint,
                "--no-listen",
                "--concurrency",
                "4",
                "--claim-size",
                "40",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while _pending(engine, outbox) == 400 and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "finishing in-flight batches" in err
        with engine.connect() as c:
            leased = c.exec_driver_sql(
                f'SELECT count(*) FROM "{outbox}".outbox WHERE lease_token IS NOT NULL'
            ).scalar_one()
            published = c.exec_driver_sql(
                f"SELECT count(*) FROM \"{outbox}\".outbox WHERE state = 'published'"
            ).scalar_one()
        assert leased == 0, "in-flight rows were abandoned instead of marked"
        assert 0 < published < 400, "SIGTERM came too late to test draining"
        attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
        assert int(attrs["Attributes"]["ApproximateNumberOfMessages"]) == published
    finally:
        server.stop()


def test_a_large_backlog_in_one_aggregate_does_not_hide_the_others(engine, outbox):
    """1,000 pending rows of one aggregate fill the relay's scan window; the heads of the other
    aggregates behind it must still be claimed in the same pass (no starvation)."""
    with engine.begin() as conn:
        for seq in range(1000):
            enqueue(
                conn,
                aggregate_type="acct",
                aggregate_key="busy",
                event_type="E",
                payload={"seq": seq},
                schema=outbox,
            )
        for g in range(5):
            enqueue(
                conn,
                aggregate_type="acct",
                aggregate_key=f"quiet{g}",
                event_type="E",
                payload={"seq": 0},
                schema=outbox,
            )
    sink = FifoModel(seed=2)
    relay = Relay(
        engine=engine, publisher=sink, options=RelayOptions(schema=outbox, listen=False, claim_size=10)
    )
    assert relay.run_once() == 6
    assert sorted(g for g, _ in sink.accepted) == ["acct:busy"] + [f"acct:quiet{g}" for g in range(5)]


def test_a_locked_row_behind_a_head_blocks_only_the_rest_of_its_group(engine, outbox):
    """rows_per_group > 1: g3's second row is locked by someone else. The claim must take g3's
    head alone (the rows before the locked one), every other group in full, and never wait."""
    _fill(engine, outbox, groups=4, per_group=3)
    sink = FifoModel(seed=4)
    relay = Relay(
        engine=engine,
        publisher=sink,
        options=RelayOptions(schema=outbox, listen=False, rows_per_group=5),
    )
    locker = engine.connect()
    txn = locker.begin()
    locker.exec_driver_sql(
        # the subquery picks the row; locking it alone (FOR UPDATE over OFFSET locks skipped rows)
        f'SELECT id FROM "{outbox}".outbox WHERE id = (SELECT id FROM "{outbox}".outbox '
        "WHERE aggregate_key = 'g3' ORDER BY id OFFSET 1 LIMIT 1) FOR UPDATE"
    )
    result: list[int] = []
    passer = threading.Thread(target=lambda: result.append(relay.run_once()), daemon=True)
    try:
        passer.start()
        passer.join(5)
        assert not passer.is_alive(), "the claim waited on a row locked behind a head"
    finally:
        txn.rollback()
        locker.close()
        passer.join(10)
    assert result == [10]
    assert [s for g, s in sink.accepted if g == "acct:g3"] == [0]
    relay.drain(max_seconds=5)
    by_group: dict[str, list[int]] = defaultdict(list)
    for group, seq in sink.accepted:
        by_group[group].append(seq)
    assert all(seqs == [0, 1, 2] for seqs in by_group.values()), dict(by_group)
