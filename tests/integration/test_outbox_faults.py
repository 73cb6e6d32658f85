"""Faults that must cost no row its attempts and no relay its threads: request-level SQS
failures (outage, credentials, permissions, 5xx, throttling) and database errors."""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from typing import Any

import pytest
import sqlalchemy as sa

from outbox_relay import InMemoryMetrics, Relay, RelayOptions, RelayThread, SqsFifoPublisher, enqueue
from outbox_relay.testing import FaultySqsClient, client_error, endpoint_unreachable

pytestmark = pytest.mark.integration


def _fill(engine: sa.Engine, schema: str, *, groups: int, per_group: int) -> None:
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


def _relay(engine: sa.Engine, schema: str, client: Any, queue_url: str, **opts: Any) -> Relay:
    opts.setdefault("listen", False)
    opts.setdefault("backoff_base_seconds", 0.01)
    opts.setdefault("backoff_max_seconds", 0.05)
    return Relay(
        engine=engine,
        publisher=SqsFifoPublisher(queue_url=queue_url, sqs_client=client),
        options=RelayOptions(schema=schema, **opts),
        metrics=InMemoryMetrics(),
    )


def _rows(engine: sa.Engine, schema: str) -> list[Any]:
    with engine.connect() as c:
        return list(c.exec_driver_sql(f'SELECT state, attempts FROM "{schema}".outbox ORDER BY id'))


def _by_group(faulty: FaultySqsClient) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(list)
    for e in faulty.sent:
        out[e.group_id].append(json.loads(e.body)["payload"]["seq"])
    return dict(out)


def test_an_sqs_outage_kills_no_head_spends_no_attempt_and_keeps_order(
    engine, outbox, sqs, queue_url, caplog
):
    _fill(engine, outbox, groups=2, per_group=3)
    down = {"on": True}
    faulty = FaultySqsClient(sqs, request_fault=lambda _n: endpoint_unreachable() if down["on"] else None)
    relay = _relay(engine, outbox, faulty, queue_url, max_attempts=2)
    caplog.set_level(logging.WARNING, logger="outbox_relay")
    outage_ends = time.monotonic() + 1.5
    while time.monotonic() < outage_ends:  # far more passes than max_attempts
        relay.run_once()
        time.sleep(0.02)
    assert faulty.injected_request_faults >= 5
    rows = _rows(engine, outbox)
    assert [r.state for r in rows] == ["pending"] * 6, "an outage made rows dead"
    assert [r.attempts for r in rows] == [0] * 6, "an outage spent row attempts"
    assert relay.metrics.counters["PublishRequestFailed"] >= 5  # type: ignore[attr-defined]
    assert any("connection" in r.getMessage() and "no attempt" in r.getMessage() for r in caplog.records)
    down["on"] = False
    time.sleep(0.1)
    assert relay.drain(max_seconds=10).published == 6
    assert _by_group(faulty) == {"acct:g0": [0, 1, 2], "acct:g1": [0, 1, 2]}


@pytest.mark.parametrize(
    ("code", "status"),
    [("ExpiredToken", 403), ("AccessDenied", 403), ("InternalError", 500), ("ThrottlingException", 400)],
)
def test_one_request_level_error_kills_no_row(engine, outbox, sqs, queue_url, code, status):
    _fill(engine, outbox, groups=25, per_group=1)
    faulty = FaultySqsClient(sqs, request_fault=lambda n: client_error(code, status) if n == 1 else None)
    relay = _relay(engine, outbox, faulty, queue_url, max_attempts=1)
    relay.run_once()
    rows = _rows(engine, outbox)
    assert sum(r.state == "dead" for r in rows) == 0, f"one {code} made rows dead"
    assert sum(r.attempts for r in rows) == 0
    time.sleep(0.1)
    relay.drain(max_seconds=10)
    assert [r.state for r in _rows(engine, outbox)] == ["published"] * 25


@pytest.mark.parametrize(("setting", "sqlstate"), [("lock_timeout", "55P03"), ("statement_timeout", "57014")])
def test_database_timeouts_during_claims_do_not_kill_the_relay(
    engine, database_url, outbox, sqs, queue_url, setting, sqlstate, caplog
):
    """Claims wait on a lock an operator holds, the relay's session times out: every pipeline
    must survive (log, back off, retry) and publish once the lock is gone."""
    _fill(engine, outbox, groups=5, per_group=2)
    relay_engine = sa.create_engine(
        database_url, connect_args={"options": f"-c {setting}=100ms"}, pool_size=8, max_overflow=8
    )
    faulty = FaultySqsClient(sqs)
    relay = _relay(
        relay_engine, outbox, faulty, queue_url, pipelines=4, poll_interval_seconds=0.05, lease_seconds=1
    )
    caplog.set_level(logging.ERROR, logger="outbox_relay")
    blocker = engine.connect()
    txn = blocker.begin()
    handle = None
    try:
        relay.check()  # the start-up check fails fast, by design: run it before the lock
        blocker.exec_driver_sql(f'LOCK TABLE "{outbox}".outbox IN ACCESS EXCLUSIVE MODE')
        handle = RelayThread(relay)
        deadline = time.monotonic() + 10
        while relay.metrics.counters["DatabaseErrors"] < 8 and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.05)
        assert handle.alive and handle.is_healthy(), "a database error killed relay pipelines"
        assert any(sqlstate in r.getMessage() for r in caplog.records)
        txn.rollback()
        blocker.close()
        while relay.pending_count() and time.monotonic() < deadline + 10:
            time.sleep(0.05)
        assert relay.pending_count() == 0, "rows stayed pending after the database recovered"
        assert handle.is_healthy() and handle.alive_pipelines == 4
    finally:
        if not blocker.closed:
            txn.rollback()
            blocker.close()
        if handle is not None:
            handle.stop(timeout=10)
        relay_engine.dispose()
    assert len({e.deduplication_id for e in faulty.sent}) == 10


def test_the_supervisor_restarts_a_pipeline_that_dies(engine, outbox, sqs, queue_url, monkeypatch):
    relay = _relay(engine, outbox, sqs, queue_url, pipelines=2, poll_interval_seconds=0.05)
    real = relay._pass
    calls = {"n": 0}

    def flaky() -> Any:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise RuntimeError("a bug no layer below classified")
        return real()

    monkeypatch.setattr(relay, "_pass", flaky)
    handle = relay.start_in_thread()
    try:
        _fill(engine, outbox, groups=3, per_group=1)
        deadline = time.monotonic() + 10
        while relay.pending_count() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert relay.pending_count() == 0
        assert relay.metrics.counters["PipelineRestarts"] == 2  # type: ignore[attr-defined]
        assert handle.is_healthy()
    finally:
        handle.stop(timeout=10)
    assert not handle.alive and not handle.is_healthy()


def test_a_transient_error_while_marking_is_retried_not_left_to_the_lease(
    engine, outbox, sqs, queue_url, monkeypatch
):
    import psycopg
    from sqlalchemy import exc as sa_exc

    _fill(engine, outbox, groups=3, per_group=1)
    faulty = FaultySqsClient(sqs)
    relay = _relay(engine, outbox, faulty, queue_url)
    real = relay._store.mark
    calls = {"n": 0}

    def flaky_mark(**kw: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise sa_exc.OperationalError("UPDATE", {}, psycopg.errors.QueryCanceled("statement timeout"))
        return real(**kw)

    monkeypatch.setattr(relay._store, "mark", flaky_mark)
    assert relay.run_once() == 3  # marked on the second try, in the same pass
    assert [r.state for r in _rows(engine, outbox)] == ["published"] * 3
    assert len(faulty.sent) == 3


def test_a_claim_that_waited_past_its_lease_neither_holds_an_expired_lease_nor_sends(
    engine, outbox, sqs, queue_url
):
    """The claim waits 1.5 s on a table lock, longer than its 1 s lease. The lease must start
    when the rows are leased (not when the claim transaction began), and the relay must count
    its deadline from before the claim, so it does not send rows another relay may now own."""
    import threading

    from outbox_relay.store import OutboxStore

    _fill(engine, outbox, groups=2, per_group=1)
    blocker = engine.connect()
    txn = blocker.begin()
    blocker.exec_driver_sql(f'LOCK TABLE "{outbox}".outbox IN ACCESS EXCLUSIVE MODE')
    store = OutboxStore(engine, schema=outbox)
    claimed: list[Any] = []
    claimer = threading.Thread(
        target=lambda: claimed.append(
            store.claim(owner="slow", claim_size=10, rows_per_group=1, lease_seconds=1, scan=100)
        )
    )
    claimer.start()
    time.sleep(1.5)
    txn.rollback()
    blocker.close()
    claimer.join(10)
    with engine.connect() as c:
        live = c.exec_driver_sql(
            f'SELECT count(*) FROM "{outbox}".outbox WHERE lease_expires_at > clock_timestamp()'
        ).scalar_one()
    assert len(claimed[0][1]) == 2
    assert live == 2, "the rows were committed with a lease that had already expired"

    time.sleep(1.1)  # those leases run out; now a relay whose own claim waits too long
    faulty = FaultySqsClient(sqs)
    relay = _relay(engine, outbox, faulty, queue_url, lease_seconds=1)
    blocker = engine.connect()
    txn = blocker.begin()
    blocker.exec_driver_sql(f'LOCK TABLE "{outbox}".outbox IN ACCESS EXCLUSIVE MODE')
    passer = threading.Thread(target=relay.run_once)
    passer.start()
    time.sleep(1.2)
    txn.rollback()
    blocker.close()
    passer.join(10)
    assert faulty.calls == 0, "sent after a claim that outlived the lease"
    assert [r.attempts for r in _rows(engine, outbox)] == [0, 0]
    time.sleep(0.1)
    assert relay.drain(max_seconds=5).published == 2


def test_late_resends_count_only_real_resends_and_each_row_once(engine, outbox, sqs, queue_url):
    """With a 1 ms dedup window every re-send is late; what must count is a send after an
    earlier one SQS may have accepted, once per row, never a claim that sent nothing."""
    from datetime import timedelta

    from outbox_relay import retry_dead

    window = {"dedup_window": timedelta(milliseconds=1)}
    _fill(engine, outbox, groups=5, per_group=1)
    # a throttling storm: five rows claimed again and again, never sent
    throttled = FaultySqsClient(sqs, throttle_rate=1.0)
    relay = _relay(engine, outbox, throttled, queue_url, **window)
    for _ in range(4):
        relay.run_once()
        time.sleep(0.06)
    throttled.throttle_rate = 0.0
    time.sleep(0.06)
    relay.drain(max_seconds=5)
    assert relay.metrics.counters["LateResends"] == 0  # type: ignore[attr-defined]

    # a row SQS always refuses, revived by retry-dead, then accepted
    with engine.begin() as conn:
        enqueue(
            conn, aggregate_type="acct", aggregate_key="poison", event_type="E", payload={}, schema=outbox
        )
    refusing = FaultySqsClient(sqs, fail_entry=lambda e: "bad" if "poison" in e["MessageGroupId"] else None)
    relay = _relay(engine, outbox, refusing, queue_url, max_attempts=1, **window)
    assert relay.drain(max_seconds=5).dead == 1
    assert retry_dead(engine, schema=outbox) == 1
    refusing.fail_entry = None
    time.sleep(0.02)
    relay.drain(max_seconds=5)
    assert relay.metrics.counters["LateResends"] == 0  # type: ignore[attr-defined]

    # a real re-send: sent, the relay dies before marking, twice; then delivered: counted once
    with engine.begin() as conn:
        enqueue(conn, aggregate_type="acct", aggregate_key="crash", event_type="E", payload={}, schema=outbox)

    class Crash(BaseException):
        pass

    def crash(_: list[dict[str, Any]]) -> None:
        raise Crash

    for _ in range(2):
        with pytest.raises(Crash):
            _relay(
                engine, outbox, FaultySqsClient(sqs, after_send=crash), queue_url, lease_seconds=1
            ).run_once()
        time.sleep(1.1)
    survivor = _relay(engine, outbox, FaultySqsClient(sqs), queue_url, **window)
    result = survivor.drain(max_seconds=5)
    assert result.published == 1 and result.late_resends == 1
    assert survivor.metrics.counters["LateResends"] == 1  # type: ignore[attr-defined]


def test_a_relay_stalled_between_its_lease_check_and_the_send_sends_nothing(engine, outbox, sqs, queue_url):
    """The relay passes its lease check, then stalls (here: 1.5 s inside the client, before the
    request goes out) past its 1 s lease while another relay takes the rows over and sends
    them. The stalled attempt must be refused at the wire (botocore's before-send), not sent
    behind the new owner's messages, and it must cost the rows nothing."""
    import threading

    _fill(engine, outbox, groups=1, per_group=3)
    stalled = FaultySqsClient(sqs, request_fault=lambda n: time.sleep(1.5) if n == 1 else None)
    slow = _relay(engine, outbox, stalled, queue_url, lease_seconds=1, claim_size=1)
    passer = threading.Thread(target=slow.run_once)
    passer.start()
    time.sleep(1.1)  # the stalled relay's lease is over: a live relay delivers seq 0, 1, 2
    live = FaultySqsClient(sqs)
    assert _relay(engine, outbox, live, queue_url).drain(max_seconds=5).published == 3
    passer.join(10)
    assert [json.loads(e.body)["payload"]["seq"] for e in live.sent] == [0, 1, 2]
    assert stalled.sent == [], "the stalled relay sent after its lease had passed to another"
    assert slow.metrics.counters.get("Failed", 0) == 0  # type: ignore[attr-defined]
    assert [r for r in _rows(engine, outbox)] == [("published", 0)] * 3


def test_an_attempt_that_could_outlast_the_lease_is_not_started(engine, outbox, aws_env):
    """Our own client bounds one attempt at connect + read timeout (7 s): with 8 s of a 15 s
    lease gone, a send could end after another relay re-sent the rows, so none starts; the
    rows go back untouched. With the lease fresh, the same relay sends."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        url = boto3.client("sqs", region_name="us-east-1").create_queue(
            QueueName="lease.fifo", Attributes={"FifoQueue": "true"}
        )["QueueUrl"]
        publisher = SqsFifoPublisher(queue_url=url, region_name="us-east-1")
        assert publisher.attempt_seconds == SqsFifoPublisher.CONNECT_TIMEOUT + SqsFifoPublisher.READ_TIMEOUT
        now = [0.0]
        relay = Relay(
            engine=engine,
            publisher=publisher,
            options=RelayOptions(schema=outbox, listen=False, lease_seconds=15),
            metrics=InMemoryMetrics(),
            clock=lambda: now[0],
        )
        _fill(engine, outbox, groups=2, per_group=1)
        original = relay._store.claim

        def slow_claim(**kw: Any) -> Any:
            result = original(**kw)
            now[0] += 8.0  # the claim took 8 s of the lease (a lock wait, a GC pause...)
            return result

        relay._store.claim = slow_claim  # type: ignore[method-assign]
        assert relay.run_once() == 0
        assert [r.attempts for r in _rows(engine, outbox)] == [0, 0]
        relay._store.claim = original  # type: ignore[method-assign]
        with engine.begin() as c:  # make the rows claimable again at once
            c.exec_driver_sql(f'UPDATE "{outbox}".outbox SET lease_expires_at = NULL, available_at = now()')
        assert relay.run_once() == 2
