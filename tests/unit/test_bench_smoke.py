"""The benchmark's fake SQS endpoint speaks what the real botocore client sends, and throttles
past the FIFO quota (no benchmark runs here: see ``python -m bench``)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from bench.fake_aws import FakeAwsServer, ServerConfig, TokenBucket, serve_in_thread
from bench.report import summarize, table
from outbox_relay import OutboundMessage, SqsFifoPublisher
from outbox_relay.exceptions import PublishError


@pytest.fixture
def server() -> Iterator[FakeAwsServer]:
    srv = serve_in_thread(ServerConfig(delay=0.0, normal_calls_per_s=0.01, normal_burst=5, record_acks=True))
    yield srv
    srv.shutdown()
    srv.server_close()


def client(srv: FakeAwsServer, service: str = "sqs") -> Any:
    return boto3.client(
        service,
        endpoint_url=srv.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="t",
        aws_secret_access_key="t",
        config=Config(retries={"mode": "standard", "max_attempts": 1}),
    )


def message(i: int) -> OutboundMessage:
    eid = str(uuid.uuid4())
    body = json.dumps({"event_id": eid, "payload": {"i": i}})
    return OutboundMessage(
        row_id=i,
        event_id=eid,
        group_id=f"order:{i}",
        deduplication_id=eid,
        body=body,
        attributes={"event_type": {"DataType": "String", "StringValue": "T"}},
        size=len(body),
    )


def test_botocore_sends_a_batch_through_the_publisher(server: FakeAwsServer) -> None:
    publisher = SqsFifoPublisher(queue_url=server.queue_url, sqs_client=client(server))
    publisher.check()  # GetQueueAttributes: FifoQueue=true
    batch = [message(i) for i in range(10)]
    outcome = publisher.publish_batch(batch)
    assert sorted(outcome.succeeded) == list(range(10)) and not outcome.failed
    assert set(server.state.acks) == {m.event_id for m in batch}
    assert server.state.counters["messages"] == 10


def test_normal_mode_throttles_past_the_quota(server: FakeAwsServer) -> None:
    sqs = client(server)
    entries = [
        {
            "Id": "0",
            "MessageBody": json.dumps({"event_id": str(uuid.uuid4())}),
            "MessageGroupId": "g",
            "MessageDeduplicationId": "d",
        }
    ]
    for _ in range(5):  # the bucket holds 5 calls
        sqs.send_message_batch(QueueUrl=server.queue_url, Entries=entries)
    with pytest.raises(ClientError) as info:
        sqs.send_message_batch(QueueUrl=server.queue_url, Entries=entries)
    assert info.value.response["Error"]["Code"] == "ThrottlingException"
    publisher = SqsFifoPublisher(queue_url=server.queue_url, sqs_client=sqs)
    with pytest.raises(PublishError) as err:
        publisher.publish_batch([message(1)])
    assert err.value.throttled


def test_high_throughput_mode_limits_per_group() -> None:
    srv = serve_in_thread(ServerConfig(delay=0.0, sqs_mode="high", group_calls_per_s=0.001, group_burst=2))
    try:
        sqs = client(srv)

        def send(group: str) -> None:
            sqs.send_message_batch(
                QueueUrl=srv.queue_url,
                Entries=[
                    {"Id": "0", "MessageBody": "{}", "MessageGroupId": group, "MessageDeduplicationId": "d"}
                ],
            )

        send("a")
        send("a")
        with pytest.raises(ClientError):
            send("a")
        for g in "bcdefgh":  # other groups have their own quota
            send(g)
    finally:
        srv.shutdown()
        srv.server_close()


def test_step_functions_start_execution_and_bucket() -> None:
    srv = serve_in_thread(ServerConfig(delay=0.0, sfn_bucket=2, sfn_refill_per_s=0.001))
    try:
        sfn = client(srv, "stepfunctions")
        arn = "arn:aws:states:us-east-1:123456789012:stateMachine:S"
        got = sfn.start_execution(stateMachineArn=arn, name="n1", input="{}")
        assert got["executionArn"].endswith(":execution:S:n1")
        sfn.start_execution(stateMachineArn=arn, name="n2", input="{}")
        with pytest.raises(ClientError) as info:
            sfn.start_execution(stateMachineArn=arn, name="n3", input="{}")
        assert info.value.response["Error"]["Code"] == "ThrottlingException"
    finally:
        srv.shutdown()
        srv.server_close()


def test_token_bucket_refills() -> None:
    bucket = TokenBucket(rate=1000, capacity=1)
    assert bucket.take() and not bucket.take()


def test_summary_marks_targets() -> None:
    raw = {
        "raw_sql": {"rows_per_s": 100.0},
        "naive": {"rows_per_s": 5.0},
        "relay_null": {
            "default": {"rows_per_s": 90.0, "variant": "d"},
            "best": {"rows_per_s": 95.0, "variant": "b"},
        },
    }
    out = summarize(raw)
    assert out["relay_vs_raw_sql"]["value"] == 0.9 and out["relay_vs_raw_sql"]["pass"] is True
    assert out["relay_vs_naive"]["pass"] is True and out["e2e_msgs_per_s_normal"]["pass"] is None
    assert "PASS" in table({**out, "raw": raw})


def test_the_ratio_to_raw_sql_is_the_median_of_back_to_back_pairs() -> None:
    """One raw drain is too noisy a yardstick: relay→null is compared pair by pair."""
    pairs = [(50.0, 100.0), (60.0, 200.0), (90.0, 100.0)]  # ratios 0.5, 0.3, 0.9
    raw = {
        "raw_sql": {"rows_per_s": 1000.0},  # an outlier run of its own: not the yardstick
        "relay_null": {
            "default": {
                "rows_per_s": 60.0,
                "paired_raw_rows_per_s": 100.0,
                "paired_ratio": 0.5,
                "pairs": [{"relay_rows_per_s": r, "raw_rows_per_s": w} for r, w in pairs],
            },
            "best": {"rows_per_s": 90.0, "variant": "b"},
        },
    }
    out = summarize(raw)
    assert out["relay_vs_raw_sql"]["value"] == 0.5
    assert out["relay_vs_raw_sql"]["raw_sql_rows_per_s"] == 100.0
    assert out["relay_vs_raw_sql_best"]["value"] == 0.9


def test_the_endpoint_reports_the_queues_throughput_mode_like_sqs() -> None:
    for mode, quota in (("normal", 300.0), ("high", None)):
        srv = serve_in_thread(ServerConfig(delay=0.0, sqs_mode=mode))
        try:
            publisher = SqsFifoPublisher(queue_url=srv.queue_url, sqs_client=client(srv))
            publisher.check()
            assert publisher.calls_per_second_quota == quota
        finally:
            srv.shutdown()
            srv.server_close()


def test_dispatcher_bench_builds_the_real_handler(server: FakeAwsServer) -> None:
    """The dispatcher bench drives the real handler with the example app's routes."""
    from bench.dispatcher import _handler, _record

    host, port = server.server_address[:2]
    handler = _handler(f"http://{host}:{port}")
    from saga_outbox.local import LocalLambdaContext

    context = LocalLambdaContext(function_name="dispatcher")
    # OrderPlaced starts OrderSaga and OrderProjection on the fake endpoint; nothing fails
    assert handler({"Records": [_record(0)]}, context) == {"batchItemFailures": []}
