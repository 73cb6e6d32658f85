"""DynamoDB as the outbox, against moto's DynamoDB, DynamoDB Streams and SQS FIFO.

moto differences modelled here: its FIFO dedup has no 5-minute window (a re-send is checked by
its MessageDeduplicationId, not by the queue), and its stream has a single shard that never
splits (the order the consumer restores within a batch is tested with a reordered batch).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from examples.orders import create_app, ddb_commands
from outbox_relay import (
    DynamoDbOutbox,
    OutboxEvent,
    SqsFifoPublisher,
    TransactionCancelledError,
    deduplication_id,
    message_group_id,
)
from outbox_relay.dynamodb import StreamRelay
from saga_outbox.local import LocalOptions, LocalRuntime
from saga_outbox.local.stream_source import DynamoDbStreamEventSource, lambda_dynamodb_event
from saga_outbox.workflows import execution_name

pytestmark = pytest.mark.integration

TABLE = "outbox"


@pytest.fixture
def aws(aws_env: None) -> Iterator[dict[str, Any]]:
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        table = ddb.create_table(
            TableName=TABLE,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
        )["TableDescription"]
        ddb_commands.create_orders_table(ddb)
        sqs = boto3.client("sqs", region_name="us-east-1")
        queue_url = sqs.create_queue(QueueName="events.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        yield {
            "ddb": ddb,
            # moto routes only the regional streams endpoint, not the ARN's account endpoint
            "streams": boto3.client(
                "dynamodbstreams", region_name="us-east-1", config=Config(account_id_endpoint_mode="disabled")
            ),
            "stream_arn": table["LatestStreamArn"],
            "sqs": sqs,
            "queue_url": queue_url,
        }


def _stream_records(aws: dict[str, Any]) -> list[dict[str, Any]]:
    streams = aws["streams"]
    shard = streams.describe_stream(StreamArn=aws["stream_arn"])["StreamDescription"]["Shards"][0]["ShardId"]
    it = streams.get_shard_iterator(
        StreamArn=aws["stream_arn"], ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )
    return list(streams.get_records(ShardIterator=it["ShardIterator"], Limit=1000)["Records"])


def _drain_stream(aws: dict[str, Any]) -> list[dict[str, Any]]:
    """Run the consumer over the whole stream once (as the Lambda event source would)."""
    relay = StreamRelay(publisher=SqsFifoPublisher(queue_url=aws["queue_url"], sqs_client=aws["sqs"]))
    event = lambda_dynamodb_event(_stream_records(aws), stream_arn=aws["stream_arn"], region="us-east-1")
    outcome = relay.publish(event["Records"])
    assert not outcome.failed
    messages: list[dict[str, Any]] = []
    while (
        batch := aws["sqs"]
        .receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=10, AttributeNames=["All"])
        .get("Messages", [])
    ):
        messages.extend(batch)
        aws["sqs"].delete_message_batch(
            QueueUrl=aws["queue_url"],
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )
    return messages


def _order_item(order_id: str) -> dict[str, Any]:
    return {
        "Put": {
            "TableName": "orders",
            "Item": {"order_id": {"S": order_id}},
            "ConditionExpression": "attribute_not_exists(order_id)",
        }
    }


def test_a_cancelled_transaction_writes_and_publishes_nothing(aws: dict[str, Any]) -> None:
    outbox = DynamoDbOutbox(table_name=TABLE, dynamodb_client=aws["ddb"])
    outbox.transact_write(
        [_order_item("o-1")],
        [
            OutboxEvent(
                aggregate_type="order", aggregate_key="o-1", event_type="OrderPlaced", payload={"n": 1}
            )
        ],
    )
    with pytest.raises(TransactionCancelledError, match="ConditionalCheckFailed") as info:
        # the order exists: its condition check fails, so the whole transaction is cancelled
        outbox.transact_write(
            [_order_item("o-1")],
            [
                OutboxEvent(
                    aggregate_type="order", aggregate_key="o-1", event_type="OrderPlacedAgain", payload={}
                )
            ],
        )
    assert info.value.reasons[0]["Code"] == "ConditionalCheckFailed"
    messages = _drain_stream(aws)
    assert [json.loads(m["Body"])["event_type"] for m in messages] == ["OrderPlaced"]
    counter = aws["ddb"].get_item(TableName=TABLE, Key={"pk": {"S": "order:o-1"}, "sk": {"S": "counter"}})[
        "Item"
    ]
    assert counter["seq"]["N"] == "1"  # the cancelled transaction did not move the sequence


def test_a_committed_transaction_publishes_exactly_its_events_in_order(aws: dict[str, Any]) -> None:
    outbox = DynamoDbOutbox(table_name=TABLE, dynamodb_client=aws["ddb"])
    first = outbox.transact_write(
        [_order_item("o-2")],
        [
            OutboxEvent(aggregate_type="order", aggregate_key="o-2", event_type=f"E{i}", payload={"i": i})
            for i in range(3)
        ]
        + [OutboxEvent(aggregate_type="cart", aggregate_key="c-9", event_type="CartClosed", payload={})],
    )
    second = outbox.transact_write(
        [], [OutboxEvent(aggregate_type="order", aggregate_key="o-2", event_type="E3", payload={"i": 3})]
    )
    messages = _drain_stream(aws)
    by_group: dict[str, list[dict[str, Any]]] = {}
    for m in messages:
        by_group.setdefault(m["Attributes"]["MessageGroupId"], []).append(json.loads(m["Body"]))
    assert [b["event_type"] for b in by_group["order:o-2"]] == ["E0", "E1", "E2", "E3"]
    assert [b["event_type"] for b in by_group["cart:c-9"]] == ["CartClosed"]
    ids = [*first, *second]
    assert sorted(m["Attributes"]["MessageDeduplicationId"] for m in messages) == sorted(
        deduplication_id(i) for i in ids
    )
    body = json.loads(messages[0]["Body"])
    assert set(body) == {
        "event_id",
        "event_type",
        "aggregate_type",
        "aggregate_key",
        "occurred_at",
        "headers",
        "payload",
    }
    assert messages[0]["Attributes"]["MessageGroupId"] == message_group_id(
        body["aggregate_type"], body["aggregate_key"]
    )


def test_a_concurrent_writer_of_the_aggregate_is_cancelled_on_the_sequence_and_retried(
    aws: dict[str, Any],
) -> None:
    outbox = DynamoDbOutbox(table_name=TABLE, dynamodb_client=aws["ddb"])
    stale = outbox.transact_items(
        [OutboxEvent(aggregate_type="order", aggregate_key="o-3", event_type="A", payload={})]
    )
    outbox.transact_write(
        [], [OutboxEvent(aggregate_type="order", aggregate_key="o-3", event_type="B", payload={})]
    )
    with pytest.raises(aws["ddb"].exceptions.TransactionCanceledException):
        aws["ddb"].transact_write_items(TransactItems=stale)  # built on seq 0; B took 1
    outbox.transact_write(
        [], [OutboxEvent(aggregate_type="order", aggregate_key="o-3", event_type="C", payload={})]
    )
    assert [json.loads(m["Body"])["event_type"] for m in _drain_stream(aws)] == ["B", "C"]


def test_the_orders_example_on_dynamodb_runs_the_same_saga_end_to_end(database_url: str, schema: str) -> None:
    app = create_app(schema=f"{schema}_orders")
    options = LocalOptions(database_url=database_url, outbox_schema=schema, outbox_source="dynamodb")
    with LocalRuntime(app, options) as local:
        ddb_commands.create_orders_table(local.clients["dynamodb"])
        outbox = local.dynamodb_outbox()
        order_id, event_id = ddb_commands.place_order(
            outbox, customer_id="c-7", items=[{"sku": "BOOK", "qty": 1}], amount_cents=1200
        )
        with pytest.raises(TransactionCancelledError):  # the same order id again: nothing written
            ddb_commands.place_order(
                outbox,
                order_id=order_id,
                customer_id="c-7",
                items=[{"sku": "BOOK", "qty": 1}],
                amount_cents=1200,
            )
        name = execution_name("OrderSaga", event_id)
        deadline = time.monotonic() + 120
        status = None
        while time.monotonic() < deadline:
            found = [e for e in local.executions("OrderSaga") if e["name"] == name]
            status = found[0]["status"] if found else None
            if status not in (None, "RUNNING"):
                break
            time.sleep(0.2)
        assert status == "SUCCEEDED"
        assert len(local.executions("OrderSaga")) == 1  # the cancelled placement started nothing
        history = local.clients["stepfunctions"].get_execution_history(
            executionArn=next(e for e in local.executions("OrderSaga") if e["name"] == name)["executionArn"]
        )["events"]
        entered = [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]
        assert "ConfirmOrder" in entered or any("Confirm" in s for s in entered), entered
        assert local.stream_source is not None and local.stream_source.stats.failures == 0
        item = local.clients["dynamodb"].get_item(TableName="orders", Key={"order_id": {"S": str(order_id)}})
        assert item["Item"]["status"]["S"] == "PENDING"


def _source(aws: dict[str, Any], handler: Any, **kwargs: Any) -> DynamoDbStreamEventSource:
    return DynamoDbStreamEventSource(
        streams_client=aws["streams"], stream_arn=aws["stream_arn"], handler=handler, **kwargs
    )


def _consumer(aws: dict[str, Any]) -> Any:
    from saga_outbox.lambdas.config import RuntimeConfig
    from saga_outbox.lambdas.handlers.stream import make_handler
    from saga_outbox.lambdas.runtime import Runtime

    return make_handler(
        Runtime(RuntimeConfig(queue_url=aws["queue_url"])),
        publisher=SqsFifoPublisher(queue_url=aws["queue_url"], sqs_client=aws["sqs"]),
    )


def _received(aws: dict[str, Any]) -> list[str]:
    out: list[str] = []
    while (
        batch := aws["sqs"]
        .receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=10)
        .get("Messages", [])
    ):
        out.extend(json.loads(m["Body"])["event_type"] for m in batch)
        aws["sqs"].delete_message_batch(
            QueueUrl=aws["queue_url"],
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )
    return out


def test_a_consumer_crash_mid_batch_gets_the_batch_again(aws: dict[str, Any]) -> None:
    outbox = DynamoDbOutbox(table_name=TABLE, dynamodb_client=aws["ddb"])
    for i in range(4):
        outbox.transact_write(
            [], [OutboxEvent(aggregate_type="order", aggregate_key="k", event_type=f"E{i}", payload={})]
        )
    consumer = _consumer(aws)
    calls = []

    def crashing(event: dict[str, Any], context: Any) -> Any:
        calls.append(len(event["Records"]))
        response = consumer(event, context)  # everything was sent ...
        if len(calls) == 1:
            raise RuntimeError("killed before returning")  # ... and the invocation still failed
        return response

    source = _source(aws, crashing)
    while source.poll_once():
        pass
    assert source.stats.handler_errors == 1
    # redelivered whole: sent twice, deduplicated by SQS inside its window (moto: while queued)
    assert _received(aws) == ["E0", "E1", "E2", "E3"]


def test_a_poison_item_goes_to_the_on_failure_queue_and_the_shard_moves_on(aws: dict[str, Any]) -> None:
    outbox = DynamoDbOutbox(table_name=TABLE, dynamodb_client=aws["ddb"])
    outbox.transact_write(
        [], [OutboxEvent(aggregate_type="order", aggregate_key="a", event_type="A1", payload={})]
    )
    # an item written around the writer (no payload): it can never become a message
    aws["ddb"].put_item(
        TableName=TABLE,
        Item={"pk": {"S": "order:p"}, "sk": {"S": "1"}, "kind": {"S": "event"}, "seq": {"N": "1"}},
    )
    outbox.transact_write(
        [], [OutboxEvent(aggregate_type="order", aggregate_key="b", event_type="B1", payload={})]
    )
    failures: list[dict[str, Any]] = []
    source = _source(aws, _consumer(aws), max_retry_attempts=2, on_failure=failures.append)
    for _ in range(20):
        source.poll_once()
    assert [f["DDBStreamBatchInfo"]["batchSize"] for f in failures] == [1]
    assert sorted(_received(aws)) == ["A1", "B1"]
    assert source.stats.sent_to_on_failure == 1


def test_the_readme_dynamodb_example_runs_as_written(aws: dict[str, Any]) -> None:
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = re.search(r"<!-- dynamodb-example:start -->\s*```python\n(.*?)```", readme, re.S)
    assert block, "README lost its DynamoDB example"
    aws["ddb"].create_table(
        TableName="accounts",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    namespace: dict[str, Any] = {"OUTBOX_TABLE": TABLE}
    exec(compile(block.group(1), "README.md", "exec"), namespace)
    messages = _drain_stream(aws)
    assert [json.loads(m["Body"])["event_id"] for m in messages] == [str(namespace["event_id"])]
    assert aws["ddb"].get_item(TableName="accounts", Key={"id": {"S": "42"}})["Item"]["balance"]["N"] == "0"
