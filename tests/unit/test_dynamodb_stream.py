"""The DynamoDB outbox: writer checks before any request, and the stream consumer's batch rules
(poison record, order per aggregate, request-level failures) through the Lambda handler,
publishing to moto's SQS FIFO through FaultySqsClient."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from outbox_relay import (
    AggregateTypeSeparatorError,
    DynamoDbOutbox,
    InvalidEventError,
    OutboxEvent,
    PayloadNotJsonError,
    PayloadTooLargeError,
    SqsFifoPublisher,
)
from outbox_relay.dynamodb import DYNAMODB_ITEM_MAX_BYTES, TransactionTooLargeError
from outbox_relay.testing import FaultySqsClient, client_error, endpoint_unreachable
from saga_outbox.lambdas.config import RuntimeConfig
from saga_outbox.lambdas.handlers.stream import make_handler
from saga_outbox.lambdas.runtime import Runtime
from saga_outbox.local import LocalLambdaContext
from saga_outbox.local.stream_source import lambda_dynamodb_event

STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/outbox/stream/2026-12-02T00:00:00.000"


class RecordingClient:
    """Counts every DynamoDB call: the checks must raise before the first."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        def call(**kwargs: Any) -> Any:
            self.calls.append(name)
            return {}

        return call


@pytest.mark.parametrize(
    ("event", "error", "named"),
    [
        (
            {"aggregate_type": "or:der", "aggregate_key": "1", "event_type": "E", "payload": {}},
            AggregateTypeSeparatorError,
            "'or:der'",
        ),
        (
            {"aggregate_type": "order", "aggregate_key": "has space", "event_type": "E", "payload": {}},
            InvalidEventError,
            "'order:has space'",
        ),
        (
            {"aggregate_type": "order", "aggregate_key": "1", "event_type": "", "payload": {}},
            InvalidEventError,
            "event_type",
        ),
        (
            {"aggregate_type": "order", "aggregate_key": "1", "event_type": "E", "payload": {"x": {1, 2}}},
            PayloadNotJsonError,
            "set",
        ),
        (
            {
                "aggregate_type": "order",
                "aggregate_key": "1",
                "event_type": "E",
                "payload": {},
                "event_id": "nope",
            },
            InvalidEventError,
            "'nope'",
        ),
        (
            {
                "aggregate_type": "order",
                "aggregate_key": "1",
                "event_type": "E",
                "payload": {"blob": "x" * DYNAMODB_ITEM_MAX_BYTES},
            },
            PayloadTooLargeError,
            "409,600-byte item limit",
        ),
        (
            {"aggregate_type": "order", "aggregate_key": "1", "event_typo": "E", "payload": {}},
            InvalidEventError,
            "event_typo",
        ),
    ],
)
def test_bad_input_is_refused_before_any_dynamodb_call(
    event: dict[str, Any], error: type, named: str
) -> None:
    client = RecordingClient()
    outbox = DynamoDbOutbox(table_name="outbox", dynamodb_client=client)
    with pytest.raises(error, match=named):
        outbox.transact_write([], [event])
    with pytest.raises(error, match=named):
        outbox.transact_items([event])
    assert client.calls == []


def test_a_transaction_over_100_items_is_refused_before_any_call() -> None:
    client = RecordingClient()
    outbox = DynamoDbOutbox(table_name="outbox", dynamodb_client=client)
    events = [
        OutboxEvent(aggregate_type="order", aggregate_key=str(i), event_type="E", payload={})
        for i in range(50)
    ]
    with pytest.raises(
        TransactionTooLargeError, match="1 business items \\+ 50 events \\+ 50 sequence counters = 101"
    ):
        outbox.transact_write([{"Put": {}}], events)
    assert client.calls == []


def test_short_retention_is_refused() -> None:
    with pytest.raises(Exception, match="retention_seconds=3600"):
        DynamoDbOutbox(table_name="outbox", retention_seconds=3600)


def _insert(
    group: str, seq: int, number: int, *, event_type: str = "E", event_id: str | None = None
) -> dict[str, Any]:
    aggregate_type, _, key = group.partition(":")
    image = {
        "pk": {"S": group},
        "sk": {"S": f"{seq:020d}"},
        "kind": {"S": "event"},
        "seq": {"N": str(seq)},
        "event_id": {"S": event_id or str(uuid.uuid4())},
        "event_type": {"S": event_type},
        "aggregate_type": {"S": aggregate_type},
        "aggregate_key": {"S": key},
        "occurred_at": {"S": "2026-12-02T00:00:00.000000+00:00"},
        "payload": {"S": json.dumps({"seq": seq})},
        "headers": {"S": "{}"},
        "expires_at": {"N": "1790000000"},
    }
    return {
        "eventID": uuid.uuid4().hex,
        "eventName": "INSERT",
        "dynamodb": {
            "Keys": {"pk": image["pk"], "sk": image["sk"]},
            "NewImage": image,
            "SequenceNumber": str(number),
            "SizeBytes": 300,
            "StreamViewType": "NEW_IMAGE",
        },
    }


@pytest.fixture
def sqs(aws_env: None) -> Iterator[tuple[Any, str]]:
    with mock_aws():
        client = boto3.client("sqs", region_name="us-east-1")
        url = client.create_queue(QueueName="events.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        yield client, url


def _handler(client: Any, url: str) -> Any:
    return make_handler(
        Runtime(RuntimeConfig(queue_url=url)), publisher=SqsFifoPublisher(queue_url=url, sqs_client=client)
    )


def _invoke(handler: Any, records: list[dict[str, Any]]) -> set[str]:
    event = lambda_dynamodb_event(records, stream_arn=STREAM_ARN, region="us-east-1")
    response = handler(event, LocalLambdaContext(function_name="stream"))
    return {f["itemIdentifier"] for f in response["batchItemFailures"]}


def test_a_poison_record_fails_alone_with_the_later_records_of_its_aggregate(sqs: tuple[Any, str]) -> None:
    client, url = sqs
    poison = _insert("order:a", 2, 102)
    del poison["dynamodb"]["NewImage"]["payload"]  # written around the writer: cannot become a message
    records = [
        _insert("order:a", 1, 101),
        poison,
        _insert("order:b", 1, 103),
        _insert("order:a", 3, 104),
        _insert("order:b", 2, 105),
        {
            "eventName": "MODIFY",
            "dynamodb": {"SequenceNumber": "106", "Keys": {}, "NewImage": {"kind": {"S": "counter"}}},
        },
    ]
    faulty = FaultySqsClient(client)
    assert _invoke(_handler(faulty, url), records) == {"102", "104"}
    assert [(e.group_id, json.loads(e.body)["payload"]["seq"]) for e in faulty.sent] == [
        ("order:a", 1),
        ("order:b", 1),
        ("order:b", 2),
    ]


def test_an_entry_sqs_refuses_fails_with_its_later_records_only(sqs: tuple[Any, str]) -> None:
    client, url = sqs
    records = [
        _insert("order:a", 1, 1),
        _insert("order:a", 2, 2),
        _insert("order:b", 1, 3),
        _insert("order:a", 3, 4),
    ]
    faulty = FaultySqsClient(
        client,
        fail_entry=lambda e: (
            "bad"
            if json.loads(e["MessageBody"])["payload"]["seq"] == 2 and e["MessageGroupId"] == "order:a"
            else None
        ),
    )
    assert _invoke(_handler(faulty, url), records) == {"2", "4"}
    assert [(e.group_id, json.loads(e.body)["payload"]["seq"]) for e in faulty.sent] == [
        ("order:a", 1),
        ("order:b", 1),
    ]


def test_a_batch_the_stream_delivered_out_of_seq_order_is_published_in_seq_order(
    sqs: tuple[Any, str],
) -> None:
    client, url = sqs
    # a partition split can put one aggregate's items in sibling shards: model it by order
    records = [_insert("order:a", 2, 1), _insert("order:a", 1, 2), _insert("order:a", 3, 3)]
    faulty = FaultySqsClient(client)
    assert _invoke(_handler(faulty, url), records) == set()
    assert [json.loads(e.body)["payload"]["seq"] for e in faulty.sent] == [1, 2, 3]
    # one entry per aggregate per request: a failed entry can never have a later one beside it
    assert faulty.calls == 3


@pytest.mark.parametrize(
    "fault",
    [
        endpoint_unreachable,
        lambda: client_error("ThrottlingException", 400),
        lambda: client_error("ExpiredToken", 403),
    ],
)
def test_a_request_level_failure_fails_the_batch_without_singling_out_a_record(
    sqs: tuple[Any, str], fault: Any
) -> None:
    client, url = sqs
    faulty = FaultySqsClient(client, request_fault=lambda n: fault())
    records = [_insert("order:a", 1, 1), _insert("order:b", 1, 2), _insert("order:a", 2, 3)]
    handler = _handler(faulty, url)
    assert _invoke(handler, records) == {"1", "2", "3"}
    assert faulty.sent == []
    assert faulty.calls == 3  # retried inside the invocation, then the batch goes back whole


def test_a_request_failure_that_clears_inside_the_invocation_publishes_everything(
    sqs: tuple[Any, str],
) -> None:
    client, url = sqs
    faulty = FaultySqsClient(
        client, request_fault=lambda n: client_error("ThrottlingException", 400) if n == 1 else None
    )
    records = [_insert("order:a", 1, 1), _insert("order:b", 1, 2)]
    assert _invoke(_handler(faulty, url), records) == set()
    assert len(faulty.sent) == 2


def test_the_message_matches_the_postgres_relays_group_and_dedup_ids(sqs: tuple[Any, str]) -> None:
    client, url = sqs
    event_id = str(uuid.uuid4())
    faulty = FaultySqsClient(client)
    assert (
        _invoke(
            _handler(faulty, url), [_insert("order:a", 1, 1, event_type="OrderPlaced", event_id=event_id)]
        )
        == set()
    )
    message = client.receive_message(QueueUrl=url, AttributeNames=["All"], MessageAttributeNames=["All"])[
        "Messages"
    ][0]
    assert message["Attributes"]["MessageGroupId"] == "order:a"
    assert message["Attributes"]["MessageDeduplicationId"] == event_id
    assert message["MessageAttributes"]["event_type"]["StringValue"] == "OrderPlaced"
    body = json.loads(message["Body"])
    assert (body["event_id"], body["payload"], body["headers"]) == (event_id, {"seq": 1}, {})
