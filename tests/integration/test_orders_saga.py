"""End to end on one machine: command API -> outbox -> relay -> SQS FIFO (moto) -> dispatcher ->
Step Functions (moto executes the compiled ASL) -> steps Lambda (bridged in-process) -> PostgreSQL,
and the saga's own events back through the outbox to the Express projection.

The handlers are the module-level Lambda entry points, wired with ``saga_outbox.lambdas.runtime.configure``
exactly as the local runtime does."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import sqlalchemy as sa
from moto import mock_aws

from examples.orders import create_app, migrate_orders, order_tables
from examples.orders import handler as command_api
from outbox_relay import migrate, outbox_table
from saga_outbox.lambdas import runtime
from saga_outbox.lambdas.config import RuntimeConfig
from saga_outbox.lambdas.handlers import dispatcher, relay, steps
from saga_outbox.local import LocalLambdaContext, lambda_bridge
from saga_outbox.workflows import compile_definition, execution_name

pytestmark = pytest.mark.integration

MOTO_CONFIG: Any = {"lambda": {"use_docker": False}, "stepfunctions": {"execute_state_machine": True}}
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:steps"
ROLE_ARN = "arn:aws:iam::123456789012:role/saga"
BODY = {
    "customer_id": "c-1",
    "items": [{"sku": "BOOK-1", "qty": 2}, {"sku": "PEN", "qty": 1}],
    "amount_cents": 4200,
}


class Stack:
    def __init__(
        self, engine: sa.Engine, schema: str, sfn: Any, sqs: Any, queue_url: str, arns: dict[str, str]
    ):
        self.engine, self.schema, self.sfn, self.sqs, self.queue_url, self.arns = (
            engine,
            schema,
            sfn,
            sqs,
            queue_url,
            arns,
        )
        self.tables = order_tables(schema)

    def place(self, body: dict[str, Any]) -> uuid.UUID:
        event = {
            "version": "2.0",
            "rawPath": "/orders",
            "headers": {"content-type": "application/json"},
            "requestContext": {"stage": "$default", "http": {"method": "POST", "path": "/orders"}},
            "body": json.dumps(body),
            "isBase64Encoded": False,
        }
        response = command_api.handler(event, LocalLambdaContext(function_name="command-api"))
        assert response["statusCode"] == 202, response
        return uuid.UUID(json.loads(response["body"])["order_id"])

    def deliver(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        return dispatcher.handler({"Records": records}, LocalLambdaContext(function_name="dispatcher"))  # type: ignore[no-any-return]

    def pump_once(self) -> list[dict[str, Any]]:
        """Relay the outbox to SQS, then feed every message to the dispatcher; returns the records."""
        relay.handler({}, LocalLambdaContext(function_name="relay"))
        delivered: list[dict[str, Any]] = []
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                return delivered
            records = [sqs_record(m) for m in messages]
            assert self.deliver(records) == {"batchItemFailures": []}
            for m in messages:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])
            delivered.extend(records)

    def settle(self, timeout: float = 60.0) -> None:
        """Pump and wait until no execution runs and the outbox has nothing pending."""
        deadline = time.monotonic() + timeout
        while True:
            delivered = self.pump_once()
            self.wait_executions(deadline)
            if not delivered and self.pending() == 0:
                return
            assert time.monotonic() < deadline, "saga did not settle"

    def wait_executions(self, deadline: float) -> None:
        while any(e["status"] == "RUNNING" for e in self.executions()):
            assert time.monotonic() < deadline, "executions still running"
            time.sleep(0.05)

    def executions(self, workflow: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for name, arn in self.arns.items()
            if workflow in (None, name)
            for e in self.sfn.list_executions(stateMachineArn=arn)["executions"]
        ]

    def pending(self) -> int:
        t = outbox_table(self.schema)
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).where(t.c.state == "pending")).scalar_one())

    def events(self, order_id: uuid.UUID) -> list[str]:
        t = outbox_table(self.schema)
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(t.c.event_type).where(t.c.aggregate_key == str(order_id)).order_by(t.c.id)
                )
                .scalars()
                .all()
            )

    def one(self, table: sa.Table, order_id: uuid.UUID) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(table).where(table.c.order_id == order_id)).all())

    def order(self, order_id: uuid.UUID) -> tuple[str, int]:
        t = self.tables.orders
        with self.engine.connect() as conn:
            return tuple(conn.execute(sa.select(t.c.status, t.c.version).where(t.c.id == order_id)).one())  # type: ignore[return-value]

    def view(self, order_id: uuid.UUID) -> tuple[str, int] | None:
        t = self.tables.order_view
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t.c.status, t.c.version).where(t.c.order_id == order_id)).first()
        return None if row is None else (row.status, row.version)

    def saga_arn(self, order_id: uuid.UUID) -> str:
        t = outbox_table(self.schema)
        with self.engine.connect() as conn:
            event_id = conn.execute(
                sa.select(t.c.event_id).where(
                    t.c.aggregate_key == str(order_id), t.c.event_type == "OrderPlaced"
                )
            ).scalar_one()
        name = execution_name("OrderSaga", event_id)
        return next(e["executionArn"] for e in self.executions("OrderSaga") if e["name"] == name)

    def states(self, arn: str) -> list[str]:
        events = self.sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]


def sqs_record(message: dict[str, Any]) -> dict[str, Any]:
    """An SQS message as the Lambda event source mapping delivers it."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {},
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:events.fifo",
        "awsRegion": "us-east-1",
    }


@pytest.fixture
def stack(engine: sa.Engine, schema: str, aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    # the example's command API reads its own settings from the environment at cold start
    monkeypatch.setenv("ORDERS_SCHEMA", schema)
    monkeypatch.setenv("ALLOW_SIMULATION", "true")
    migrate(engine, schema=schema)
    migrate_orders(engine, schema=schema)
    with mock_aws(config=MOTO_CONFIG):
        sfn: Any = boto3.client("stepfunctions", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(
            TableName="idempotency",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        queue_url = sqs.create_queue(QueueName="events.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        app = create_app(schema=schema)
        arns = {
            w.name: sfn.create_state_machine(
                name=w.name,
                definition=json.dumps(compile_definition(w, function_arns={"steps": FUNCTION_ARN})),
                roleArn=ROLE_ARN,
                type=str(w.kind),
            )["stateMachineArn"]
            for w in app.workflows
        }
        runtime.configure(
            RuntimeConfig(
                database_url="postgresql://injected",
                outbox_schema=schema,
                queue_url=queue_url,
                idempotency_table="idempotency",
                state_machine_arns=arns,
                relay_max_seconds=5,
            ),
            app=app,
            engine=engine,
            sfn_client=sfn,
            sqs_client=sqs,
            dynamodb_client=ddb,
        )
        try:
            with lambda_bridge({"steps": steps.handler}):
                yield Stack(engine, schema, sfn, sqs, queue_url, arns)
        finally:
            runtime.reset()


def test_happy_path_confirms_order_and_projects_it(stack: Stack) -> None:
    order_id = stack.place(BODY)
    stack.settle()
    assert stack.order(order_id) == ("CONFIRMED", 2)
    assert stack.events(order_id) == ["OrderPlaced", "OrderConfirmed"]
    t = stack.tables
    assert len(stack.one(t.inventory_reservations, order_id)) == 2
    assert len(stack.one(t.payments, order_id)) == 1
    assert len(stack.one(t.shipments, order_id)) == 1
    assert stack.view(order_id) == ("CONFIRMED", 2)
    assert sorted(n.event_type for n in stack.one(t.notifications, order_id)) == [
        "OrderConfirmed",
        "OrderPlaced",
    ]
    saga = stack.saga_arn(order_id)
    assert stack.sfn.describe_execution(executionArn=saga)["status"] == "SUCCEEDED"
    assert stack.states(saga)[-2:] == ["MarkCompleted", "SagaCompleted"]
    assert len(stack.executions("OrderSaga")) == 1
    assert len(stack.executions("OrderProjection")) == 2


def test_payment_failure_releases_inventory_and_cancels(stack: Stack) -> None:
    order_id = stack.place({**BODY, "simulate": {"fail_payment": True}})
    stack.settle()
    saga = stack.saga_arn(order_id)
    assert stack.sfn.describe_execution(executionArn=saga)["status"] == "SUCCEEDED"
    states = stack.states(saga)
    assert "CompensateReserveInventory" in states and states[-1] == "SagaCompensated"
    assert "CreateShipment" not in states
    t = stack.tables
    reservations = stack.one(t.inventory_reservations, order_id)
    assert len(reservations) == 2 and all(r.released_at is not None for r in reservations)
    assert stack.one(t.payments, order_id) == []
    assert stack.order(order_id) == ("CANCELLED", 2)
    assert stack.events(order_id) == ["OrderPlaced", "OrderCancelled"]
    assert stack.view(order_id) == ("CANCELLED", 2)


def test_refund_failure_ends_in_compensation_failed(stack: Stack) -> None:
    order_id = stack.place({**BODY, "simulate": {"fail_shipping": True, "fail_refund": True}})
    stack.settle()
    saga = stack.saga_arn(order_id)
    described = stack.sfn.describe_execution(executionArn=saga)
    assert described["status"] == "FAILED"
    assert described.get("error") == "CompensationFailed"
    # the execution says what to repair: the failed state, its error and its cause
    failed = json.loads(described["cause"])
    assert list(failed) == ["CompensateChargePayment"]
    assert failed["CompensateChargePayment"]["Error"] == "Rejected.RefundFailed"
    assert "refund failed (simulated)" in failed["CompensateChargePayment"]["Cause"]
    assert stack.order(order_id) == ("PENDING", 1)  # left for manual repair, with an alarm
    assert stack.one(stack.tables.shipments, order_id) == []
    # the shipment was rejected (nothing happened): its own compensation did not run
    assert "CompensateCreateShipment" not in stack.states(saga)


def test_charge_with_unknown_outcome_is_refunded(stack: Stack) -> None:
    """The charge commits, then its response is lost on every attempt (Lambda.Unknown, as after
    a timeout at second 31 of 30): the saga must refund it, not keep it while cancelling."""
    lost: list[str] = []

    def response_lost(event: dict[str, Any], context: Any) -> Any:
        result = steps.handler(event, context)
        if event["action"] == "charge_payment":
            lost.append(event["state"])
            raise type("Lambda.Unknown", (Exception,), {})("response lost after the commit")
        return result

    with lambda_bridge({"steps": response_lost}):
        order_id = stack.place(BODY)
        stack.settle()
    saga = stack.saga_arn(order_id)
    assert stack.sfn.describe_execution(executionArn=saga)["status"] == "SUCCEEDED"
    states = stack.states(saga)
    assert states[states.index("ChargePaymentFailed") + 1] == "CompensateChargePayment"
    assert len(lost) == 3  # retried (Lambda.Unknown is transient), then compensated
    [payment] = stack.one(stack.tables.payments, order_id)  # charged once, however often retried
    assert payment.refunded_at is not None
    assert all(r.released_at is not None for r in stack.one(stack.tables.inventory_reservations, order_id))
    assert stack.order(order_id) == ("CANCELLED", 2)


def test_shipment_failure_after_commit_is_cancelled(stack: Stack) -> None:
    """The shipment commits, then the step times out: the shipment is cancelled, the payment
    refunded and the stock released: nothing of a cancelled order stays behind."""

    def timed_out(event: dict[str, Any], context: Any) -> Any:
        result = steps.handler(event, context)
        if event["action"] == "create_shipment":
            raise type("Sandbox.Timedout", (Exception,), {})("Task timed out after 30.00 seconds")
        return result

    with lambda_bridge({"steps": timed_out}):
        order_id = stack.place(BODY)
        stack.settle()
    t = stack.tables
    [shipment] = stack.one(t.shipments, order_id)
    assert shipment.cancelled_at is not None
    assert all(p.refunded_at is not None for p in stack.one(t.payments, order_id))
    assert stack.order(order_id) == ("CANCELLED", 2)


def test_redelivery_and_repeated_step_make_one_effect(stack: Stack) -> None:
    order_id = stack.place(BODY)
    relay.handler({}, LocalLambdaContext(function_name="relay"))
    messages = stack.sqs.receive_message(QueueUrl=stack.queue_url, AttributeNames=["All"])["Messages"]
    record = sqs_record(messages[0])
    # the same message delivered twice (e.g. a late re-send after SQS's 5-minute window)
    assert stack.deliver([record]) == {"batchItemFailures": []}
    stack.wait_executions(time.monotonic() + 60)
    assert stack.deliver([record]) == {"batchItemFailures": []}
    stack.sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=messages[0]["ReceiptHandle"])
    stack.settle()
    assert len(stack.executions("OrderSaga")) == 1
    # invoke the ChargePayment task again with the payload Step Functions sent
    saga = stack.saga_arn(order_id)
    history = stack.sfn.get_execution_history(executionArn=saga, maxResults=1000)["events"]
    scheduled = [
        json.loads(e["taskScheduledEventDetails"]["parameters"])["Payload"]
        for e in history
        if "taskScheduledEventDetails" in e
    ]
    charge = next(p for p in scheduled if p["state"] == "ChargePayment")
    again = steps.handler(charge, LocalLambdaContext(function_name="steps"))
    output = json.loads(stack.sfn.describe_execution(executionArn=saga)["output"])
    assert again == output["results"]["ChargePayment"]["output"]  # the stored answer
    assert len(stack.one(stack.tables.payments, order_id)) == 1
    assert stack.order(order_id) == ("CONFIRMED", 2)
    assert stack.events(order_id) == ["OrderPlaced", "OrderConfirmed"]
