"""The relay against real PostgreSQL and moto SQS: what is published, when, and with which ids."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from outbox_relay import (
    InMemoryMetrics,
    OutboxEnvelope,
    PayloadNotJsonError,
    PayloadTooLargeError,
    Relay,
    RelayOptions,
    SqsFifoPublisher,
    deduplication_id,
    enqueue,
    outbox_status,
)
from outbox_relay.testing import FaultySqsClient

pytestmark = pytest.mark.integration


def _receive_all(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not batch:
            return out
        out.extend(batch)
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )


def _relay(engine: sa.Engine, schema: str, client: Any, queue_url: str, **opts: Any) -> Relay:
    opts.setdefault("listen", False)
    return Relay(
        engine=engine,
        publisher=SqsFifoPublisher(queue_url=queue_url, sqs_client=client),
        options=RelayOptions(schema=schema, **opts),
        metrics=InMemoryMetrics(),
    )


def _states(engine: sa.Engine, schema: str) -> dict[str, str]:
    with engine.connect() as c:
        return {str(e): s for e, s in c.exec_driver_sql(f'SELECT event_id, state FROM "{schema}".outbox')}


def test_rolled_back_transaction_publishes_nothing(engine, outbox, sqs, queue_url):
    with engine.connect() as conn:
        trans = conn.begin()
        enqueue(
            conn,
            aggregate_type="order",
            aggregate_key="1",
            event_type="OrderPlaced",
            payload={"n": 1},
            schema=outbox,
        )
        trans.rollback()
    result = _relay(engine, outbox, sqs, queue_url).drain(max_seconds=5)
    assert result.published == 0
    assert _receive_all(sqs, queue_url) == []


#: headers are carried verbatim; a trace header must be well-formed (docs/tracing.md)
TRACEPARENT = "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"


def test_commit_publishes_exactly_its_rows_with_deterministic_ids(engine, outbox, sqs, queue_url):
    with Session(engine) as session, session.begin():
        ids = [
            enqueue(
                session,
                aggregate_type="order",
                aggregate_key=f"k{i % 4}",
                event_type="OrderPlaced",
                payload={"n": i},
                headers={"traceparent": TRACEPARENT},
                schema=outbox,
            )
            for i in range(12)
        ]
    result = _relay(engine, outbox, sqs, queue_url).drain(max_seconds=10)
    assert result.published == 12 and result.remaining == 0
    messages = _receive_all(sqs, queue_url)
    assert sorted(json.loads(m["Body"])["event_id"] for m in messages) == sorted(map(str, ids))
    for m in messages:
        env = OutboxEnvelope.from_json(m["Body"])
        assert (
            m["Attributes"]["MessageDeduplicationId"] == deduplication_id(env.event_id) == str(env.event_id)
        )
        assert m["Attributes"]["MessageGroupId"] == f"order:{env.aggregate_key}"
        assert m["MessageAttributes"]["event_type"]["StringValue"] == "OrderPlaced"
        assert env.headers == {"traceparent": TRACEPARENT}
    assert set(_states(engine, outbox).values()) == {"published"}


def test_enqueue_joins_a_raw_psycopg_transaction(engine, database_url, outbox, sqs, queue_url):
    dsn = sa.make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as conn:
        enqueue(conn, aggregate_type="order", aggregate_key="p", event_type="E", payload={}, schema=outbox)
        conn.rollback()
        kept = enqueue(
            conn, aggregate_type="order", aggregate_key="p", event_type="E", payload={}, schema=outbox
        )
        conn.commit()
    assert list(_states(engine, outbox)) == [str(kept)]


def test_enqueue_refuses_bad_payloads_and_leaves_the_transaction_usable(engine, outbox):
    with engine.connect() as conn, conn.begin():
        with pytest.raises(PayloadNotJsonError, match="payload is not JSON-serializable") as not_json:
            enqueue(
                conn,
                aggregate_type="order",
                aggregate_key="1",
                event_type="E",
                payload={"when": object()},
                schema=outbox,
            )
        with pytest.raises(PayloadNotJsonError, match="Out of range float"):
            enqueue(
                conn,
                aggregate_type="order",
                aggregate_key="1",
                event_type="E",
                payload={"x": float("nan")},
                schema=outbox,
            )
        eid = uuid.uuid4()
        with pytest.raises(PayloadTooLargeError, match=str(eid)) as too_big:
            enqueue(
                conn,
                aggregate_type="order",
                aggregate_key="1",
                event_type="E",
                event_id=eid,
                payload={"blob": "x" * 1_048_600},
                schema=outbox,
            )
        assert too_big.value.size > too_big.value.limit == 1_048_576
        assert "claim-check" in str(too_big.value)
        # the caller's transaction is intact and can go on
        enqueue(
            conn,
            aggregate_type="order",
            aggregate_key="1",
            event_type="E",
            payload={"ok": True},
            schema=outbox,
        )
    assert "event " in str(not_json.value)
    assert len(_states(engine, outbox)) == 1


@pytest.mark.parametrize(
    "payload",
    [
        {"blob": "é" * 1_600},  # 2 bytes each in UTF-8
        # jsonb prints numbers as numeric (1e300: 301 digits) and escapes like json.dumps
        {"v": [1e300, 1.5e-7, -0.0, 2**70], "s": 'tab\t"quote"\x01', "nested": {"a": [None, True]}},
    ],
)
def test_enqueue_size_estimate_matches_the_published_message(engine, outbox, sqs, queue_url, payload):
    """The enqueue-time size check must measure what the relay really sends."""
    limit = 4_000
    with engine.begin() as conn:
        eid = enqueue(
            conn,
            aggregate_type="order",
            aggregate_key="1",
            event_type="E",
            payload=payload,
            schema=outbox,
            max_message_bytes=limit,
        )
    msg = _receive_all(sqs, queue_url) or None
    assert msg is None
    _relay(engine, outbox, sqs, queue_url).drain(max_seconds=5)
    [m] = _receive_all(sqs, queue_url)
    sent = len(m["Body"].encode()) + len("event_type") + len("String") + len("E")
    with engine.begin() as conn, pytest.raises(PayloadTooLargeError):
        enqueue(
            conn,
            aggregate_type="order",
            aggregate_key="1",
            event_type="E",
            payload=payload,
            schema=outbox,
            max_message_bytes=sent - 1,
        )
    assert json.loads(m["Body"])["event_id"] == str(eid)


def test_duplicate_event_id_is_a_noop(engine, outbox, sqs, queue_url):
    eid = uuid.uuid4()
    for _ in range(2):
        with engine.begin() as conn:
            enqueue(
                conn,
                aggregate_type="order",
                aggregate_key="1",
                event_type="E",
                payload={},
                event_id=eid,
                schema=outbox,
            )
    assert _relay(engine, outbox, sqs, queue_url).drain(max_seconds=5).published == 1


def test_per_entry_failures_mark_only_accepted_entries_and_retry_the_rest(engine, outbox, sqs, queue_url):
    with engine.begin() as conn:
        ids = [
            enqueue(
                conn,
                aggregate_type="order",
                aggregate_key=f"g{i}",
                event_type="E",
                payload={"i": i},
                schema=outbox,
            )
            for i in range(30)
        ]
    faulty = FaultySqsClient(sqs, entry_failure_rate=0.3, seed=7)
    relay = _relay(engine, outbox, faulty, queue_url, backoff_base_seconds=0.01, backoff_max_seconds=0.05)
    first = relay.run_once()
    states = _states(engine, outbox)
    accepted = {json.loads(e.body)["event_id"] for e in faulty.sent}
    assert 0 < first == len(accepted) < 30
    assert {k for k, v in states.items() if v == "published"} == accepted
    with engine.connect() as c:
        retried = c.exec_driver_sql(
            f'SELECT count(*) FROM "{outbox}".outbox WHERE attempts = 1 '
            "AND state = 'pending' AND last_error LIKE 'InternalError%%'"
        ).scalar()
    assert retried == 30 - len(accepted)
    faulty.entry_failure_rate = 0.0
    deadline = time.monotonic() + 10
    while relay.pending_count() and time.monotonic() < deadline:
        relay.run_once()
        time.sleep(0.02)
    assert set(_states(engine, outbox).values()) == {"published"}
    assert sorted(json.loads(e.body)["event_id"] for e in faulty.sent) == sorted(map(str, ids))


def test_throttling_backs_off_without_spending_attempts(engine, outbox, sqs, queue_url):
    with engine.begin() as conn:
        enqueue(conn, aggregate_type="order", aggregate_key="1", event_type="E", payload={}, schema=outbox)
    faulty = FaultySqsClient(sqs, throttle_rate=1.0)
    relay = _relay(engine, outbox, faulty, queue_url, backoff_base_seconds=0.01, max_attempts=1)
    for _ in range(3):
        assert relay.run_once() == 0
        time.sleep(0.05)
    with engine.connect() as c:
        row = c.exec_driver_sql(f'SELECT state, attempts, last_error FROM "{outbox}".outbox').one()
    assert row.state == "pending" and row.attempts == 0 and row.last_error.startswith("throttled")
    faulty.throttle_rate = 0.0
    time.sleep(0.1)
    assert relay.drain(max_seconds=5).published == 1


def test_poison_row_goes_dead_and_the_others_keep_flowing(engine, outbox, sqs, queue_url):
    with engine.begin() as conn:
        for i in range(5):
            enqueue(
                conn,
                aggregate_type="order",
                aggregate_key="same",
                event_type="E",
                payload={"i": i},
                schema=outbox,
            )
        # written around enqueue's checks (e.g. by a hand-made INSERT): too large for SQS
        conn.exec_driver_sql(
            f'INSERT INTO "{outbox}".outbox (event_id, aggregate_type, aggregate_key, event_type, payload) '
            "VALUES (gen_random_uuid(), 'order', 'other', 'E', "
            "jsonb_build_object('blob', repeat('x', 1100000)))"
        )
    # the body carries the payload as PostgreSQL prints jsonb (", " and ": " separators)
    poison = '"i": 2'
    rejecting = FaultySqsClient(sqs, fail_entry=lambda e: "bad body" if poison in e["MessageBody"] else None)
    relay = _relay(engine, outbox, rejecting, queue_url)
    result = relay.drain(max_seconds=10)
    assert result.published == 4 and result.dead == 2 and result.remaining == 0
    with engine.connect() as c:
        dead = dict(
            c.exec_driver_sql(
                f"SELECT aggregate_key, last_error FROM \"{outbox}\".outbox WHERE state = 'dead'"
            ).all()
        )
    assert "over the 1,048,576-byte limit" in dead["other"]
    assert dead["same"].startswith("InvalidParameterValue: bad body")
    assert [json.loads(e.body)["payload"]["i"] for e in rejecting.sent] == [0, 1, 3, 4]


def test_crash_between_send_and_mark_resends_with_the_same_dedup_id(engine, outbox, sqs, queue_url):
    with engine.begin() as conn:
        eid = enqueue(
            conn, aggregate_type="order", aggregate_key="1", event_type="E", payload={}, schema=outbox
        )

    class Crash(BaseException):
        pass

    def crash(_: list[dict[str, Any]]) -> None:
        raise Crash  # the process dies after SQS accepted, before the mark commits

    faulty = FaultySqsClient(sqs, after_send=crash)
    crashed = _relay(engine, outbox, faulty, queue_url, lease_seconds=1)
    with pytest.raises(Crash):
        crashed.run_once()
    assert _states(engine, outbox)[str(eid)] == "pending"
    time.sleep(1.1)  # the crashed relay's lease runs out
    survivor = FaultySqsClient(sqs)
    assert _relay(engine, outbox, survivor, queue_url).drain(max_seconds=5).published == 1
    assert (
        [e.deduplication_id for e in faulty.sent] == [e.deduplication_id for e in survivor.sent] == [str(eid)]
    )
    # moto forgets deleted messages and has no 5-minute window, so we check the id contract
    # above rather than relying on moto to drop the second copy.


def test_stalled_relay_is_fenced_off(engine, outbox, sqs, queue_url):
    with engine.begin() as conn:
        enqueue(conn, aggregate_type="order", aggregate_key="1", event_type="E", payload={}, schema=outbox)
    slow = _relay(engine, outbox, sqs, queue_url, lease_seconds=1)
    from outbox_relay.store import OutboxStore

    store = OutboxStore(engine, schema=outbox)
    stale_token, rows = store.claim(
        owner="stalled", claim_size=10, rows_per_group=1, lease_seconds=1, scan=100
    )
    assert len(rows) == 1
    time.sleep(1.1)
    assert slow.drain(max_seconds=5).published == 1  # the live relay takes over after the lease
    marked, _, _ = store.mark(token=stale_token, published=[rows[0].id], releases=[], max_attempts=3)
    assert marked == 0  # the stalled relay's late mark changes nothing


def test_late_resend_after_the_dedup_window_is_counted(engine, outbox, sqs, queue_url):
    with engine.begin() as conn:
        eid = enqueue(
            conn, aggregate_type="order", aggregate_key="1", event_type="E", payload={}, schema=outbox
        )
        # first sent 6 minutes ago by a relay that crashed before marking
        conn.exec_driver_sql(f"UPDATE \"{outbox}\".outbox SET first_sent_at = now() - interval '6 minutes'")
    relay = _relay(engine, outbox, sqs, queue_url)
    result = relay.drain(max_seconds=5)
    assert result.late_resends == 1 and result.published == 1
    assert relay.metrics.counters["LateResends"] == 1  # type: ignore[attr-defined]
    assert str(eid) in _states(engine, outbox)


def test_status_reports_pending_dead_lag_and_stalled_groups(engine, outbox, sqs, queue_url):
    assert outbox_status(engine, schema=outbox).pending == 0
    with engine.begin() as conn:
        enqueue(conn, aggregate_type="order", aggregate_key="1", event_type="E", payload={}, schema=outbox)
        conn.exec_driver_sql(
            f"UPDATE \"{outbox}\".outbox SET attempts = 2, last_error = 'boom', "
            "created_at = now() - interval '90 seconds'"
        )
    status = outbox_status(engine, schema=outbox)
    assert status.pending == 1 and status.oldest_pending_age_seconds >= 89
    assert status.stalled_groups[0]["last_error"] == "boom"


def test_listen_notify_wakes_an_idle_relay(engine, outbox, sqs, queue_url):
    relay = _relay(engine, outbox, sqs, queue_url, listen=True, poll_interval_seconds=30)
    handle = relay.start_in_thread()
    try:
        time.sleep(0.5)  # idle, waiting for up to 30 s
        started = time.monotonic()
        with engine.begin() as conn:
            enqueue(
                conn, aggregate_type="order", aggregate_key="1", event_type="E", payload={}, schema=outbox
            )
        while relay.pending_count() and time.monotonic() - started < 10:
            time.sleep(0.01)
        elapsed = time.monotonic() - started
    finally:
        handle.stop()
    assert relay.pending_count() == 0
    assert elapsed < 5, f"NOTIFY did not wake the relay ({elapsed:.1f}s)"


def test_retention_deletes_or_archives_old_published_rows(engine, outbox, sqs, queue_url):
    from outbox_relay import purge_published

    with engine.begin() as conn:
        for i in range(7):
            enqueue(
                conn, aggregate_type="order", aggregate_key=str(i), event_type="E", payload={}, schema=outbox
            )
    _relay(engine, outbox, sqs, queue_url).drain(max_seconds=5)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"UPDATE \"{outbox}\".outbox SET published_at = now() - interval '2 days' "
            "WHERE aggregate_key IN ('0','1','2','3')"
        )
    assert (
        purge_published(
            engine,
            schema=outbox,
            older_than=timedelta(days=1),
            batch_size=3,
            archive=True,
            keep_event_ids_for=timedelta(0),  # forget the ids at once: the rows go
        )
        == 4
    )
    with engine.connect() as c:
        assert c.exec_driver_sql(f'SELECT count(*) FROM "{outbox}".outbox').scalar() == 3
        assert c.exec_driver_sql(f'SELECT count(*) FROM "{outbox}".outbox_archive').scalar() == 4


def test_relay_thread_stops_cleanly(engine, outbox, sqs, queue_url):
    relay = _relay(engine, outbox, sqs, queue_url, poll_interval_seconds=0.05)
    handle = relay.start_in_thread()
    with engine.begin() as conn:
        for i in range(20):
            enqueue(
                conn, aggregate_type="order", aggregate_key=str(i), event_type="E", payload={}, schema=outbox
            )
    deadline = time.monotonic() + 10
    while relay.pending_count() and time.monotonic() < deadline:
        time.sleep(0.05)
    handle.stop(timeout=10)
    assert not handle.alive
    assert relay.pending_count() == 0
    assert threading.active_count() < 50


@pytest.mark.parametrize("archive", [False, True])
def test_an_event_id_stays_deduplicated_after_retention(engine, outbox, sqs, queue_url, archive):
    """Publish, purge, enqueue the same event id again: it must not be published twice while
    the purge's keep_event_ids_for horizon lasts; after it, the id is forgotten."""
    from outbox_relay import purge_published

    eid = uuid.uuid4()
    event = {"aggregate_type": "order", "aggregate_key": "1", "event_type": "E", "payload": {"n": 1}}
    with engine.begin() as conn:
        enqueue(conn, event_id=eid, schema=outbox, **event)
    relay = _relay(engine, outbox, sqs, queue_url)
    assert relay.drain(max_seconds=5).published == 1
    with engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE \"{outbox}\".outbox SET published_at = now() - interval '2 days'")
    removed = purge_published(
        engine,
        schema=outbox,
        older_than=timedelta(days=1),
        archive=archive,
        keep_event_ids_for=timedelta(days=7),
    )
    assert removed == 1
    with engine.begin() as conn:  # the producer retries its command after retention ran
        assert enqueue(conn, event_id=eid, schema=outbox, **event) == eid
    assert relay.drain(max_seconds=5).published == 0, "the event was published twice"
    with engine.connect() as c:
        payload = c.exec_driver_sql(f'SELECT payload FROM "{outbox}".outbox').scalar_one()
        assert payload is None  # the payload is gone, the event id is kept
        archived = c.exec_driver_sql(f'SELECT payload FROM "{outbox}".outbox_archive').scalars().all()
    assert archived == ([{"n": 1}] if archive else [])
    # past the horizon the id is forgotten
    with engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE \"{outbox}\".outbox SET published_at = now() - interval '8 days'")
    purge_published(engine, schema=outbox, older_than=timedelta(days=1), keep_event_ids_for=timedelta(days=7))
    with engine.connect() as c:
        assert c.exec_driver_sql(f'SELECT count(*) FROM "{outbox}".outbox').scalar_one() == 0
