"""Dispatcher handler against moto Step Functions: dedup by execution name, partial batch failures."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from examples.orders.app import app as orders_app
from outbox_relay import OutboxEnvelope
from saga_outbox.lambdas.config import RuntimeConfig
from saga_outbox.lambdas.dispatching import Dispatcher, build_routes
from saga_outbox.lambdas.exceptions import ConfigurationError
from saga_outbox.lambdas.handlers.dispatcher import make_handler
from saga_outbox.lambdas.runtime import Runtime
from saga_outbox.local import LocalLambdaContext
from saga_outbox.workflows import execution_name

ROLE = "arn:aws:iam::123456789012:role/sfn"
PASS = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})


@pytest.fixture
def sfn(aws_env: None) -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("stepfunctions", region_name="us-east-1")


@pytest.fixture
def arns(sfn: Any) -> dict[str, str]:
    return {
        name: sfn.create_state_machine(name=name, definition=PASS, roleArn=ROLE, type=kind)["stateMachineArn"]
        for name, kind in (("OrderSaga", "STANDARD"), ("OrderProjection", "EXPRESS"))
    }


def envelope(event_type: str = "OrderPlaced", order: str | None = None) -> OutboxEnvelope:
    order = order or str(uuid.uuid4())
    return OutboxEnvelope(
        event_id=uuid.uuid4(),
        event_type=event_type,
        aggregate_type="order",
        aggregate_key=order,
        occurred_at=datetime.now(UTC),
        payload={"order_id": order, "status": "PENDING", "version": 1},
    )


def record(env: OutboxEnvelope | str, group: str | None = None) -> dict[str, Any]:
    body = env if isinstance(env, str) else env.to_json()
    group = group or (env.group_id if isinstance(env, OutboxEnvelope) else "order:x")
    return {
        "messageId": str(uuid.uuid4()),
        "receiptHandle": "rh",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1700000000000",
            "SequenceNumber": "1",
            "MessageGroupId": group,
            "SenderId": "x",
            "MessageDeduplicationId": str(uuid.uuid4()),
            "ApproximateFirstReceiveTimestamp": "1700000000000",
        },
        "messageAttributes": {},
        "md5OfBody": "x",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:events.fifo",
        "awsRegion": "us-east-1",
    }


def batch(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def ctx() -> Any:
    return LocalLambdaContext(function_name="dispatcher")


def handler_for(sfn: Any, arns: dict[str, str]) -> Any:
    return make_handler(Runtime(RuntimeConfig(state_machine_arns=arns), app=orders_app, sfn_client=sfn))


def executions(sfn: Any, arn: str) -> list[dict[str, Any]]:
    return sfn.list_executions(stateMachineArn=arn)["executions"]


class ThrottlingSfn:
    """A Step Functions client whose StartExecution is throttled for chosen event ids."""

    def __init__(self, client: Any, throttled: set[str]) -> None:
        self._client = client
        self.throttled = throttled

    def start_execution(self, **kwargs: Any) -> Any:
        if json.loads(kwargs["input"])["event_id"] in self.throttled:
            response: Any = {
                "Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"},
                "ResponseMetadata": {"HTTPStatusCode": 400},
            }
            raise ClientError(response, "StartExecution")
        return self._client.start_execution(**kwargs)


def test_same_record_twice_starts_one_standard_execution(sfn: Any, arns: dict[str, str]) -> None:
    handler = handler_for(sfn, arns)
    env = envelope()
    assert handler(batch(record(env)), ctx()) == {"batchItemFailures": []}
    assert handler(batch(record(env)), ctx()) == {"batchItemFailures": []}
    saga = executions(sfn, arns["OrderSaga"])
    assert [e["name"] for e in saga] == [execution_name("OrderSaga", env.event_id)]
    described = sfn.describe_execution(executionArn=saga[0]["executionArn"])
    assert json.loads(described["input"]) == json.loads(env.to_json())
    # Express: at-least-once, one start per delivery; the input carries the event id
    projections = executions(sfn, arns["OrderProjection"])
    assert len(projections) == 2
    for e in projections:
        assert json.loads(sfn.describe_execution(executionArn=e["executionArn"])["input"])["event_id"] == str(
            env.event_id
        )


def test_execution_already_exists_counts_as_success(sfn: Any, arns: dict[str, str]) -> None:
    env = envelope()
    name = execution_name("OrderSaga", env.event_id)
    # started before with a different input (e.g. re-serialized): the service raises ExecutionAlreadyExists
    sfn.start_execution(stateMachineArn=arns["OrderSaga"], name=name, input="{}")
    dispatcher = Dispatcher(sfn_client=sfn, routes=build_routes(orders_app, arns))
    started = dispatcher.dispatch(env)
    saga = next(s for s in started if s.workflow == "OrderSaga")
    assert saga.already_existed is True
    assert saga.execution_arn == executions(sfn, arns["OrderSaga"])[0]["executionArn"]
    assert len(executions(sfn, arns["OrderSaga"])) == 1


def test_throttled_record_fails_only_its_group(sfn: Any, arns: dict[str, str]) -> None:
    a1, b1 = envelope(order="a"), envelope(order="b")
    a2 = envelope("OrderConfirmed", order="a")
    client = ThrottlingSfn(sfn, throttled={str(a1.event_id)})
    handler = make_handler(Runtime(RuntimeConfig(state_machine_arns=arns), app=orders_app, sfn_client=client))
    records = [record(a1), record(b1), record(a2)]
    response = handler(batch(*records), ctx())
    # a1 throttled -> reported; a2 (same group, later) is skipped to keep order; b1 proceeds
    assert {f["itemIdentifier"] for f in response["batchItemFailures"]} == {
        records[0]["messageId"],
        records[2]["messageId"],
    }
    assert [e["name"] for e in executions(sfn, arns["OrderSaga"])] == [
        execution_name("OrderSaga", b1.event_id)
    ]
    # the redelivery succeeds once the throttling is over
    client.throttled.clear()
    assert handler(batch(records[0], records[2]), ctx()) == {"batchItemFailures": []}
    assert len(executions(sfn, arns["OrderSaga"])) == 2


def test_unknown_event_type_is_acknowledged_and_malformed_body_fails(
    sfn: Any, arns: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    handler = handler_for(sfn, arns)
    unknown, broken = record(envelope("SomethingElse")), record("not json", group="order:z")
    response = handler(batch(unknown, broken), ctx())
    assert response == {"batchItemFailures": [{"itemIdentifier": broken["messageId"]}]}
    assert executions(sfn, arns["OrderSaga"]) == []


def test_missing_state_machine_is_a_batch_item_failure(sfn: Any, arns: dict[str, str]) -> None:
    arns = {**arns, "OrderSaga": arns["OrderSaga"].replace("OrderSaga", "Deleted")}
    handler = handler_for(sfn, arns)
    env, other = envelope(), envelope("OrderConfirmed")
    records = [record(env), record(other)]
    response = handler(batch(*records), ctx())
    assert response == {"batchItemFailures": [{"itemIdentifier": records[0]["messageId"]}]}


def test_console_link_logged(sfn: Any, arns: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.dispatcher")
    dispatcher = Dispatcher(sfn_client=sfn, routes=build_routes(orders_app, arns), logger=logger)
    with caplog.at_level(logging.INFO, logger="test.dispatcher"):
        started = dispatcher.dispatch(envelope())
    assert len(started) == 2
    links = [r.console_url for r in caplog.records if hasattr(r, "console_url")]
    assert links == [s.console_url for s in started]
    arn = started[0].execution_arn
    assert started[0].console_url == (
        f"https://us-east-1.console.aws.amazon.com/states/home?region=us-east-1#/v2/executions/details/{arn}"
    )


def test_console_link_follows_the_partition() -> None:
    from saga_outbox.workflows.links import console_execution_url

    cn = "arn:aws-cn:states:cn-north-1:123456789012:execution:OrderSaga:e-1"
    gov = "arn:aws-us-gov:states:us-gov-west-1:123456789012:execution:OrderSaga:e-1"
    assert console_execution_url(cn).startswith("https://console.amazonaws.cn/states/home?region=cn-north-1#")
    assert console_execution_url(gov).startswith(
        "https://console.amazonaws-us-gov.com/states/home?region=us-gov-west-1#"
    )


def test_routes_need_an_arn_per_workflow() -> None:
    with pytest.raises(ConfigurationError, match="OrderProjection"):
        build_routes(
            orders_app, {"OrderSaga": "arn:aws:states:us-east-1:123456789012:stateMachine:OrderSaga"}
        )
    with pytest.raises(ConfigurationError, match="STATE_MACHINE_ARNS"):
        make_handler(Runtime(RuntimeConfig()))
