"""SNS FIFO, EventBridge and Kinesis publishers and routing per destination, against real
PostgreSQL and moto. moto never fails an entry, so entry failures are injected by wrapping the
moto client (FaultyDestinationClient), as SQS's are with FaultySqsClient."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from typing import Any

import boto3
import pytest
import sqlalchemy as sa

from outbox_relay import (
    Destination,
    EventBridgePublisher,
    KinesisPublisher,
    PayloadTooLargeError,
    RelayOptions,
    RoutedRelay,
    Routes,
    SnsFifoPublisher,
    SqsFifoPublisher,
    enqueue,
    enqueue_many,
    migrate,
)
from outbox_relay.destination_testing import FaultyDestinationClient
from outbox_relay.schema import MIGRATIONS
from outbox_relay.testing import client_error, endpoint_unreachable

pytestmark = pytest.mark.integration

SQS = Destination(name="sqs", kind="sqs")
SNS = Destination(name="fanout", kind="sns")
BUS = Destination(name="bus", kind="eventbridge")
STREAM = Destination(name="stream", kind="kinesis")


def _opts(schema: str, **kw: Any) -> RelayOptions:
    kw.setdefault("listen", False)
    kw.setdefault("backoff_base_seconds", 0.05)
    kw.setdefault("backoff_max_seconds", 0.2)
    return RelayOptions(schema=schema, **kw)


def _enqueue(
    engine: sa.Engine, schema: str, events: list[tuple[str, int]], dests: list[Destination]
) -> list[str]:
    """Events (aggregate key, n) in one transaction each, in the given order; their ids."""
    ids = []
    for key, n in events:
        with engine.begin() as conn:
            ids.append(
                str(
                    enqueue(
                        conn,
                        aggregate_type="order",
                        aggregate_key=key,
                        event_type="OrderPlaced",
                        payload={"n": n},
                        schema=schema,
                        destinations=dests,
                    )
                )
            )
    return ids


def _rows(engine: sa.Engine, schema: str) -> dict[tuple[str, str], tuple[str, int]]:
    with engine.connect() as c:
        return {
            (str(e), d): (s, a)
            for e, d, s, a in c.exec_driver_sql(
                f'SELECT event_id, destination, state, attempts FROM "{schema}".outbox'
            )
        }


def _drain_queue(sqs: Any, url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]).get(
        "Messages"
    ):
        out.extend(batch)
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )
    return out


def _in_order_per_aggregate(envelopes: list[dict[str, Any]]) -> dict[str, list[int]]:
    seen: dict[str, list[int]] = defaultdict(list)
    for env in envelopes:
        seen[env["aggregate_key"]].append(env["payload"]["n"])
    return dict(seen)


@pytest.fixture
def topic(sqs: Any) -> tuple[str, str]:
    """An SNS FIFO topic with an SQS FIFO subscription (raw delivery): (topic ARN, queue URL)."""
    sns = boto3.client("sns", region_name="us-east-1")
    arn = sns.create_topic(Name="events.fifo", Attributes={"FifoTopic": "true"})["TopicArn"]
    url = sqs.create_queue(QueueName="fanout.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    qarn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=qarn, Attributes={"RawMessageDelivery": "true"})
    return arn, url


@pytest.fixture
def bus(sqs: Any) -> tuple[str, str]:
    """An event bus with a rule sending every saga-outbox event to an SQS queue: (bus, queue URL)."""
    events = boto3.client("events", region_name="us-east-1")
    events.create_event_bus(Name="app-bus")
    url = sqs.create_queue(QueueName="bus-target")["QueueUrl"]
    qarn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="all", EventBusName="app-bus", EventPattern=json.dumps({"source": ["saga-outbox"]}))
    events.put_targets(Rule="all", EventBusName="app-bus", Targets=[{"Id": "q", "Arn": qarn}])
    return "app-bus", url


@pytest.fixture
def stream(sqs: Any) -> str:
    boto3.client("kinesis", region_name="us-east-1").create_stream(StreamName="events", ShardCount=2)
    return "events"


def _read_stream(name: str) -> list[tuple[str, dict[str, Any]]]:
    """Every record of every shard, by shard iterator: (partition key, envelope)."""
    kinesis = boto3.client("kinesis", region_name="us-east-1")
    out = []
    for shard in kinesis.list_shards(StreamName=name)["Shards"]:
        it = kinesis.get_shard_iterator(
            StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while it:
            page = kinesis.get_records(ShardIterator=it, Limit=1000)
            out += [(r["PartitionKey"], json.loads(r["Data"])) for r in page["Records"]]
            it = page.get("NextShardIterator") if page["Records"] else None
    return out


# -- SNS FIFO ---------------------------------------------------------------------------------
def test_sns_fifo_fans_out_once_in_order_per_aggregate(engine, outbox, sqs, topic):
    arn, url = topic
    events = [(k, n) for n in range(5) for k in ("a", "b", "c")]
    ids = _enqueue(engine, outbox, events, [SNS])
    client = FaultyDestinationClient(boto3.client("sns", region_name="us-east-1"))
    relay = RoutedRelay(
        engine=engine,
        publishers={"fanout": SnsFifoPublisher(topic_arn=arn, sns_client=client)},
        options=_opts(outbox),
    )
    assert relay.drain(max_seconds=20)["fanout"].published == 15
    got = _drain_queue(sqs, url)
    assert sorted(json.loads(m["Body"])["event_id"] for m in got) == sorted(ids)
    assert _in_order_per_aggregate([json.loads(m["Body"]) for m in got]) == {k: list(range(5)) for k in "abc"}
    # the same group and dedup ids as SQS: the subscription's FIFO rules carry over
    assert {m["Attributes"]["MessageDeduplicationId"] for m in got} == set(ids)
    assert {m["Attributes"]["MessageGroupId"] for m in got} == {"order:a", "order:b", "order:c"}
    assert {v for v in _rows(engine, outbox).values()} == {("published", 0)}


def test_sns_entry_failure_is_retried_and_spends_one_attempt(engine, outbox, sqs, topic):
    arn, url = topic
    ids = _enqueue(engine, outbox, [("a", 0), ("a", 1), ("b", 0)], [SNS])
    failed_once: set[str] = set()

    def fail(entry: dict[str, Any]) -> str | None:
        if entry["MessageDeduplicationId"] == ids[0] and ids[0] not in failed_once:
            failed_once.add(ids[0])
            return "InternalError"
        return None

    client = FaultyDestinationClient(boto3.client("sns", region_name="us-east-1"), fail_entry=fail)
    relay = RoutedRelay(
        engine=engine,
        publishers={"fanout": SnsFifoPublisher(topic_arn=arn, sns_client=client)},
        options=_opts(outbox),
    )
    _drain_until_done(relay, engine, outbox)
    got = [json.loads(m["Body"]) for m in _drain_queue(sqs, url)]
    assert _in_order_per_aggregate(got) == {"a": [0, 1], "b": [0]}  # a:1 waited for a:0's retry
    rows = _rows(engine, outbox)
    assert rows[(ids[0], "fanout")] == ("published", 1)
    assert rows[(ids[1], "fanout")] == ("published", 0)


def _drain_until_done(relay: RoutedRelay, engine: sa.Engine, schema: str, rounds: int = 20) -> None:
    """Drain again while rows wait out their retry backoff (a drain exits when nothing is due)."""
    import time

    for _ in range(rounds):
        relay.drain(max_seconds=10)
        with engine.connect() as c:
            if not c.exec_driver_sql(
                f"SELECT count(*) FROM \"{schema}\".outbox WHERE state = 'pending'"
            ).scalar():
                return
        time.sleep(0.1)
    raise AssertionError("rows still pending")


# -- EventBridge ------------------------------------------------------------------------------
def test_eventbridge_carries_the_event_id_in_detail_to_a_rule_target(engine, outbox, sqs, bus):
    name, url = bus
    ids = _enqueue(engine, outbox, [("a", 0), ("b", 0), ("a", 1)], [BUS])
    relay = RoutedRelay(
        engine=engine,
        publishers={
            "bus": EventBridgePublisher(
                event_bus=name, events_client=boto3.client("events", region_name="us-east-1")
            )
        },
        options=_opts(outbox),
    )
    assert relay.drain(max_seconds=20)["bus"].published == 3
    delivered = [json.loads(m["Body"]) for m in _drain_queue(sqs, url)]
    assert sorted(d["detail"]["event_id"] for d in delivered) == sorted(ids)
    assert {d["detail-type"] for d in delivered} == {"OrderPlaced"}
    assert {d["source"] for d in delivered} == {"saga-outbox"}


def test_eventbridge_failed_entries_are_retried_like_sqs_entries(engine, outbox, sqs, bus):
    name, url = bus
    ids = _enqueue(engine, outbox, [("a", 0), ("b", 0), ("c", 0)], [BUS])
    failures = {"n": 0}

    def fail(entry: dict[str, Any]) -> str | None:
        if json.loads(entry["Detail"])["event_id"] == ids[1] and failures["n"] < 2:
            failures["n"] += 1
            return "InternalFailure"
        return None

    client = FaultyDestinationClient(boto3.client("events", region_name="us-east-1"), fail_entry=fail)
    relay = RoutedRelay(
        engine=engine,
        publishers={"bus": EventBridgePublisher(event_bus=name, events_client=client)},
        options=_opts(outbox),
    )
    _drain_until_done(relay, engine, outbox)
    assert sorted(json.loads(m["Body"])["detail"]["event_id"] for m in _drain_queue(sqs, url)) == sorted(ids)
    rows = _rows(engine, outbox)
    assert rows[(ids[1], "bus")] == ("published", 2)  # two FailedEntryCount answers, two attempts
    assert rows[(ids[0], "bus")] == ("published", 0)


def test_a_malformed_eventbridge_entry_is_dead_at_once(engine, outbox, sqs, bus):
    name, _ = bus
    ids = _enqueue(engine, outbox, [("a", 0), ("b", 0)], [BUS])
    client = FaultyDestinationClient(
        boto3.client("events", region_name="us-east-1"),
        fail_entry=lambda e: "MalformedDetail" if json.loads(e["Detail"])["event_id"] == ids[0] else None,
    )
    relay = RoutedRelay(
        engine=engine,
        publishers={"bus": EventBridgePublisher(event_bus=name, events_client=client)},
        options=_opts(outbox),
    )
    relay.drain(max_seconds=10)
    rows = _rows(engine, outbox)
    assert rows[(ids[0], "bus")] == ("dead", 1)
    assert rows[(ids[1], "bus")] == ("published", 0)


# -- Kinesis ----------------------------------------------------------------------------------
def test_kinesis_keeps_order_per_aggregate_with_one_record_per_aggregate_per_request(engine, outbox, stream):
    events = [(k, n) for n in range(6) for k in ("a", "b", "c", "d")]
    ids = _enqueue(engine, outbox, events, [STREAM])
    client = FaultyDestinationClient(boto3.client("kinesis", region_name="us-east-1"))
    # rows_per_group=10 is asked for; the Kinesis publisher caps it at 1 (its max_rows_per_group)
    relay = RoutedRelay(
        engine=engine,
        publishers={"stream": KinesisPublisher(stream_name=stream, kinesis_client=client)},
        options=_opts(outbox, rows_per_group=10),
    )
    _drain_until_done(relay, engine, outbox)
    for call in client.calls:
        keys = [r["PartitionKey"] for r in call]
        assert len(keys) == len(set(keys)), f"a request carried two records of one aggregate: {keys}"
    records = _read_stream(stream)
    assert sorted(env["event_id"] for _, env in records) == sorted(ids)
    assert all(pk == f"order:{env['aggregate_key']}" for pk, env in records)
    assert _in_order_per_aggregate([env for _, env in records]) == {k: list(range(6)) for k in "abcd"}


def test_kinesis_failed_records_are_retried_in_order(engine, outbox, stream):
    ids = _enqueue(engine, outbox, [("a", 0), ("a", 1), ("a", 2), ("b", 0)], [STREAM])
    failed: set[str] = set()

    def fail(record: dict[str, Any]) -> str | None:
        eid = json.loads(record["Data"])["event_id"]
        if eid == ids[1] and eid not in failed:
            failed.add(eid)
            return "InternalFailure"
        return None

    client = FaultyDestinationClient(boto3.client("kinesis", region_name="us-east-1"), fail_entry=fail)
    relay = RoutedRelay(
        engine=engine,
        publishers={"stream": KinesisPublisher(stream_name=stream, kinesis_client=client)},
        options=_opts(outbox),
    )
    _drain_until_done(relay, engine, outbox)
    records = _read_stream(stream)
    assert _in_order_per_aggregate([env for _, env in records]) == {"a": [0, 1, 2], "b": [0]}
    assert _rows(engine, outbox)[(ids[1], "stream")] == ("published", 1)


def test_a_throttled_kinesis_record_spends_no_attempt(engine, outbox, stream):
    ids = _enqueue(engine, outbox, [("a", 0)], [STREAM])
    once: list[int] = []

    def fail(record: dict[str, Any]) -> str | None:
        if not once:
            once.append(1)
            return "ProvisionedThroughputExceededException"
        return None

    client = FaultyDestinationClient(boto3.client("kinesis", region_name="us-east-1"), fail_entry=fail)
    relay = RoutedRelay(
        engine=engine,
        publishers={"stream": KinesisPublisher(stream_name=stream, kinesis_client=client)},
        options=_opts(outbox),
    )
    _drain_until_done(relay, engine, outbox)
    assert _rows(engine, outbox)[(ids[0], "stream")] == ("published", 0)


# -- request-level failures, every publisher --------------------------------------------------
@pytest.mark.parametrize(
    "fault",
    [
        endpoint_unreachable(),
        client_error("Throttled", 400),
        client_error("ExpiredTokenException", 400),
        client_error("AuthorizationError", 403),
        client_error("ResourceNotFoundException", 400),
        client_error("InternalFailure", 500),
    ],
    ids=lambda f: type(f).__name__ if not hasattr(f, "response") else f.response["Error"]["Code"],
)
@pytest.mark.parametrize("kind", ["sns", "eventbridge", "kinesis"])
def test_request_failures_back_off_and_spend_no_attempt(engine, outbox, sqs, topic, bus, stream, kind, fault):
    dest = {"sns": SNS, "eventbridge": BUS, "kinesis": STREAM}[kind]
    ids = _enqueue(engine, outbox, [("a", 0), ("a", 1), ("b", 0)], [dest])
    service = {"sns": "sns", "eventbridge": "events", "kinesis": "kinesis"}[kind]
    client = FaultyDestinationClient(
        boto3.client(service, region_name="us-east-1"), request_fault=lambda n: fault if n <= 3 else None
    )
    publisher: Any = {
        "sns": lambda: SnsFifoPublisher(topic_arn=topic[0], sns_client=client),
        "eventbridge": lambda: EventBridgePublisher(event_bus=bus[0], events_client=client),
        "kinesis": lambda: KinesisPublisher(stream_name=stream, kinesis_client=client),
    }[kind]()
    relay = RoutedRelay(engine=engine, publishers={dest.name: publisher}, options=_opts(outbox))
    _drain_until_done(relay, engine, outbox)
    assert client.injected_request_faults == 3
    assert {_rows(engine, outbox)[(i, dest.name)] for i in ids} == {("published", 0)}


# -- limits at enqueue ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("dest", "size", "refused"),
    [
        (BUS, 270_000, True),  # over EventBridge's 256 KB entry
        (SNS, 270_000, True),  # over SNS's 256 KiB message
        (SQS, 270_000, False),  # SQS takes up to 1 MiB
        (STREAM, 1_040_000, False),
        (STREAM, 1_048_300, True),  # over Kinesis: 1 MiB less the partition key, under SQS
    ],
    ids=["eventbridge", "sns", "sqs", "kinesis-fits", "kinesis-over"],
)
def test_oversized_entries_are_refused_at_enqueue_before_sql(engine, outbox, dest, size, refused):
    with engine.connect() as conn, conn.begin():
        call = lambda: enqueue(  # noqa: E731
            conn,
            aggregate_type="order",
            aggregate_key="1",
            event_type="OrderPlaced",
            payload={"blob": "x" * size},
            schema=outbox,
            destinations=[SQS, dest],
        )
        if refused:
            with pytest.raises(PayloadTooLargeError, match=f"destination '{dest.name}'"):
                call()
            assert conn.exec_driver_sql("SELECT 1").scalar() == 1  # the transaction is usable
            assert conn.exec_driver_sql(f'SELECT count(*) FROM "{outbox}".outbox').scalar() == 0
        else:
            call()
            rows = conn.exec_driver_sql(f'SELECT count(*) FROM "{outbox}".outbox').scalar()
            assert rows == len({SQS, dest})  # one row per distinct destination


# -- routing ----------------------------------------------------------------------------------
def test_a_failing_destination_never_blocks_nor_resends_the_healthy_one(engine, outbox, sqs, queue_url, bus):
    """One event type routed to SQS and EventBridge; the bus fails request-level for a while:
    SQS publishes and marks everything meanwhile, and when the bus catches up nothing is sent
    to SQS again."""
    routes = Routes(destinations=[SQS, BUS], routes={"OrderPlaced": ["sqs", "bus"]})
    ids = []
    for n in range(6):
        with engine.begin() as conn:
            ids.append(
                str(
                    enqueue(
                        conn,
                        aggregate_type="order",
                        aggregate_key=str(n % 2),
                        event_type="OrderPlaced",
                        payload={"n": n},
                        schema=outbox,
                        destinations=routes.for_event("OrderPlaced"),
                    )
                )
            )
    outage = {"on": True}
    bus_client = FaultyDestinationClient(
        boto3.client("events", region_name="us-east-1"),
        request_fault=lambda n: (
            endpoint_unreachable("https://events.us-east-1.amazonaws.com/") if outage["on"] else None
        ),
    )
    from outbox_relay.testing import FaultySqsClient

    sqs_client = FaultySqsClient(sqs)
    relay = RoutedRelay(
        engine=engine,
        publishers={
            "sqs": SqsFifoPublisher(queue_url=queue_url, sqs_client=sqs_client),
            "bus": EventBridgePublisher(event_bus=bus[0], events_client=bus_client),
        },
        options=_opts(outbox),
    )
    results = relay.drain(max_seconds=3)
    assert results["sqs"].published == 6 and results["bus"].published == 0
    rows = _rows(engine, outbox)
    assert {rows[(i, "sqs")] for i in ids} == {("published", 0)}
    assert {rows[(i, "bus")] for i in ids} == {("pending", 0)}  # backed off, no attempt spent
    assert bus_client.injected_request_faults >= 1
    sent_to_sqs = len(sqs_client.sent)

    outage["on"] = False
    _drain_until_done(relay, engine, outbox)
    assert len(sqs_client.sent) == sent_to_sqs == 6  # no re-send to the healthy destination
    assert sorted(json.loads(m["Body"])["detail"]["event_id"] for m in _drain_queue(sqs, bus[1])) == sorted(
        ids
    )
    assert {v for v in _rows(engine, outbox).values()} == {("published", 0)}


def test_a_retried_enqueue_is_a_no_op_and_a_new_route_adds_only_its_row(engine, outbox):
    eid = uuid.uuid4()
    kw: dict[str, Any] = dict(
        aggregate_type="order", aggregate_key="1", event_type="OrderPlaced", payload={"n": 1}
    )
    for dests in ([SQS, SNS], [SQS, SNS], [SQS, SNS, BUS]):
        with engine.begin() as conn:
            assert enqueue(conn, schema=outbox, event_id=eid, destinations=dests, **kw) == eid
    with engine.begin() as conn:
        enqueue_many(conn, [{**kw, "event_id": eid, "destinations": [SNS]}], schema=outbox)
    assert sorted(d for _, d in _rows(engine, outbox)) == ["bus", "fanout", "sqs"]


def test_migration_2_keeps_existing_rows_on_the_sqs_destination(engine, schema):
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        conn.exec_driver_sql(
            f'CREATE TABLE "{schema}".outbox_migrations'
            " (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for stmt in MIGRATIONS[0][1]:
            conn.exec_driver_sql(stmt.format(s=f'"{schema}"'))
        conn.exec_driver_sql(f'INSERT INTO "{schema}".outbox_migrations (version) VALUES (1)')
        conn.exec_driver_sql(
            f'INSERT INTO "{schema}".outbox (event_id, aggregate_type, aggregate_key, event_type, payload) '
            "VALUES ('00000000-0000-0000-0000-000000000001', 'order', '1', 'OrderPlaced', '{}')"
        )
    assert migrate(engine, schema=schema) == MIGRATIONS[-1][0]
    with engine.begin() as conn:
        enqueue(
            conn,
            aggregate_type="order",
            aggregate_key="1",
            event_type="OrderPlaced",
            payload={},
            event_id="00000000-0000-0000-0000-000000000001",
            schema=schema,
        )  # the old row is this event's sqs row: a no-op, not a second row
    assert _rows(engine, schema) == {("00000000-0000-0000-0000-000000000001", "sqs"): ("pending", 0)}


def test_the_app_writes_one_row_per_delivered_destination(engine, outbox):
    from tests.apps import room_app

    app = room_app()
    app.destination("audit", kind="eventbridge")
    app.deliver("RoomRequested", to=["sqs", "audit"])
    with engine.begin() as conn:
        eid = app.enqueue(
            conn,
            event_type="RoomRequested",
            payload={"room": 1},
            aggregate_type="room",
            aggregate_key="1",
            schema=outbox,
        )
        other = app.enqueue(
            conn, event_type="Unrouted", payload={}, aggregate_type="room", aggregate_key="1", schema=outbox
        )
    rows = _rows(engine, outbox)
    assert sorted(d for e, d in rows if e == str(eid)) == ["audit", "sqs"]
    assert [d for e, d in rows if e == str(other)] == ["sqs"]
    app.deliver("AuditOnly", to=["audit"])  # starts no workflow: only the bus limits its size
    with engine.connect() as conn, conn.begin(), pytest.raises(PayloadTooLargeError, match="'audit'"):
        app.enqueue(
            conn,
            event_type="AuditOnly",
            payload={"blob": "x" * 263_000},
            aggregate_type="room",
            aggregate_key="2",
            schema=outbox,
        )


def test_readme_destinations_example_runs_as_written(engine, database_url, sqs, queue_url, bus):
    import re
    from pathlib import Path

    readme = Path(__file__).resolve().parents[2].joinpath("README.md").read_text()
    block = re.search(r"<!-- destinations-example:start -->\s*```python\n(.*?)```", readme, re.S)
    assert block, "README lost its destinations example"
    db = f"readme_{uuid.uuid4().hex[:8]}"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {db}")
    url = sa.make_url(database_url).set(database=db)
    namespace: dict[str, Any] = {
        "DATABASE_URL": url.render_as_string(hide_password=False),
        "QUEUE_URL": queue_url,
        "EVENT_BUS": bus[0],
    }
    try:
        exec(compile(block.group(1), "README.md", "exec"), namespace)
        assert {name: r.published for name, r in namespace["results"].items()} == {"sqs": 1, "audit": 1}
        [message] = _drain_queue(sqs, queue_url)
        [delivered] = _drain_queue(sqs, bus[1])
        assert json.loads(message["Body"])["event_id"] == json.loads(delivered["Body"])["detail"]["event_id"]
    finally:
        if "engine" in namespace:
            namespace["engine"].dispose()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def test_sns_attempts_stay_inside_the_lease_like_sqs(sqs, topic):
    """The lease guard covers the other destinations: an attempt that could end after the lease
    is refused at the wire (request-level, nothing spent, nothing published); with the lease
    fresh the same publisher sends."""
    from outbox_relay._lease_guard import lease_deadline
    from outbox_relay.exceptions import PublishError
    from outbox_relay.publisher import OutboundMessage

    arn, url = topic
    publisher = SnsFifoPublisher(topic_arn=arn, region_name="us-east-1")
    assert publisher.attempt_seconds == 7.0  # the relay's client config: connect 2 s + read 5 s
    message = OutboundMessage(
        row_id=1,
        event_id="e1",
        group_id="order:a",
        deduplication_id="e1",
        body=json.dumps({"event_id": "e1"}),
        attributes={},
        size=20,
    )
    now = [100.0]
    with (
        lease_deadline(105.0, lambda: now[0], publisher.attempt_seconds),
        pytest.raises(PublishError) as refused,
    ):
        publisher.publish_batch([message])
    assert refused.value.cause == "lease" and refused.value.request_level
    assert not refused.value.maybe_delivered
    assert _drain_queue(sqs, url) == []
    with lease_deadline(130.0, lambda: now[0], publisher.attempt_seconds):
        assert publisher.publish_batch([message]).succeeded == [1]
    assert len(_drain_queue(sqs, url)) == 1
