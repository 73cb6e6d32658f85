"""Command API and steps handlers on a real PostgreSQL (and moto DynamoDB for Idempotency)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import sqlalchemy as sa
from moto import mock_aws

from examples.orders import handler as command_api
from examples.orders.app import create_app
from examples.orders.exceptions import PaymentDeclined
from examples.orders.schema import migrate_orders, order_tables
from outbox_relay import migrate, outbox_table
from saga_outbox.lambdas.config import RuntimeConfig
from saga_outbox.lambdas.handlers import steps
from saga_outbox.lambdas.runtime import Runtime
from saga_outbox.lambdas.tasks import ActionRegistry, StepContext
from saga_outbox.local import LocalLambdaContext

pytestmark = pytest.mark.integration

BODY = {"customer_id": "c-1", "items": [{"sku": "BOOK-1", "qty": 2}], "amount_cents": 1999}


@pytest.fixture
def db(engine: sa.Engine, schema: str) -> str:
    migrate(engine, schema=schema)
    migrate_orders(engine, schema=schema)
    return schema


def config(schema: str, **kwargs: Any) -> RuntimeConfig:
    return RuntimeConfig(database_url="postgresql://unused", outbox_schema=schema, **kwargs)


def ctx(name: str) -> Any:
    return LocalLambdaContext(function_name=name)


def url_event(
    method: str, path: str, *, headers: dict[str, str] | None = None, body: str | None = None
) -> dict:
    """A Lambda Function URL event (payload format 2.0), as the service sends it."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers or {},
        "requestContext": {
            "stage": "$default",
            "requestId": "r-1",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
        },
        "body": body,
        "isBase64Encoded": False,
    }


def http(body: Any, *, key: str | None = None, raw: str | None = None) -> dict[str, Any]:
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["idempotency-key"] = key
    return url_event("POST", "/orders", headers=headers, body=raw if raw is not None else json.dumps(body))


def count(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


# ---------------------------------------------------------------------------- command API
@pytest.fixture
def api(engine: sa.Engine, db: str) -> Any:
    return command_api.make_handler(Runtime(config(db), engine=engine), orders_schema=db)


def test_command_api_places_order_and_outbox_row(api: Any, engine: sa.Engine, db: str) -> None:
    response = api(http(BODY), ctx("command-api"))
    assert response["statusCode"] == 202
    body = json.loads(response["body"])
    assert body["status"] == "PENDING"
    order_id = uuid.UUID(body["order_id"])
    assert response["headers"]["Location"] == f"/orders/{order_id}"
    with engine.connect() as conn:
        row = conn.execute(sa.select(outbox_table(db))).one()
    assert (row.event_type, row.aggregate_key) == ("OrderPlaced", str(order_id))
    got = api(url_event("GET", f"/orders/{order_id}"), ctx("api"))
    assert got["statusCode"] == 200 and json.loads(got["body"])["status"] == "PENDING"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**BODY, "items": []}, "items"),
        ({**BODY, "items": [{"sku": "A", "qty": 0}]}, "items.0.qty"),
        ({k: v for k, v in BODY.items() if k != "customer_id"}, "customer_id"),
        ({**BODY, "amount_cents": "lots"}, "amount_cents"),
        ({**BODY, "extra": 1}, "extra"),
        ({**BODY, "simulate": {"fail_payment": True}}, "simulate"),
        ([1, 2], "body"),
    ],
)
def test_command_api_bad_input_is_400_naming_the_field(
    api: Any, engine: sa.Engine, db: str, body: Any, field: str
) -> None:
    response = api(http(body), ctx("command-api"))
    assert response["statusCode"] == 400
    answer = json.loads(response["body"])
    assert answer["field"] == field
    assert field in answer["message"] or field == "body"
    assert count(engine, order_tables(db).orders) == 0


def test_command_api_invalid_json_is_400(api: Any) -> None:
    response = api(http(None, raw="{nope"), ctx("command-api"))
    assert response["statusCode"] == 400
    assert "not valid JSON" in json.loads(response["body"])["message"]


def test_same_idempotency_key_returns_first_answer_and_one_order(
    api: Any, engine: sa.Engine, db: str
) -> None:
    first = api(http(BODY, key="k-1"), ctx("command-api"))
    # Function URLs base64-encode bodies they do not recognize as text
    event = http(BODY, key="k-1")
    event["body"], event["isBase64Encoded"] = base64.b64encode(event["body"].encode()).decode(), True
    second = api(event, ctx("command-api"))
    assert first["statusCode"] == second["statusCode"] == 202
    assert json.loads(first["body"]) == json.loads(second["body"])
    assert second["headers"]["Idempotent-Replayed"] == "true"
    assert count(engine, order_tables(db).orders) == 1
    assert count(engine, outbox_table(db)) == 1
    # the same key with another body is refused
    conflict = api(http({**BODY, "amount_cents": 1}, key="k-1"), ctx("command-api"))
    assert conflict["statusCode"] == 422
    # no key: every call is a new order
    api(http(BODY), ctx("command-api"))
    assert count(engine, order_tables(db).orders) == 2


def test_simulation_allowed_only_when_configured(engine: sa.Engine, db: str) -> None:
    api = command_api.make_handler(
        Runtime(config(db), engine=engine), orders_schema=db, allow_simulation=True
    )
    response = api(http({**BODY, "simulate": {"fail_payment": True}}), ctx("command-api"))
    assert response["statusCode"] == 202
    with engine.connect() as conn:
        payload = conn.execute(sa.select(outbox_table(db).c.payload)).scalar_one()
    assert payload["simulate"] == {"fail_payment": True}


# ---------------------------------------------------------------------------- steps + Idempotency
@pytest.fixture
def dynamodb(aws_env: None) -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="idempotency",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


class Counting:
    """Wraps a real registry and counts how often each action really runs."""

    def __init__(self, inner: ActionRegistry) -> None:
        self.calls: dict[str, int] = {}
        self.registry = ActionRegistry()
        for workflow, action in inner:
            fn = inner.lookup(workflow, action)
            self.registry.register(workflow, action, self._wrap(action, fn))

    def _wrap(self, action: str, fn: Any) -> Any:
        def run(ctx: StepContext) -> dict[str, Any]:
            self.calls[action] = self.calls.get(action, 0) + 1
            return fn(ctx)  # type: ignore[no-any-return]

        return run


def placed_event(api: Any, engine: sa.Engine, db: str, body: dict[str, Any] = BODY) -> dict[str, Any]:
    order_id = json.loads(api(http(body), ctx("api"))["body"])["order_id"]
    t = outbox_table(db)
    with engine.connect() as conn:
        row = conn.execute(sa.select(t).where(t.c.aggregate_key == order_id)).one()
    return {
        "event_id": str(row.event_id),
        "event_type": row.event_type,
        "aggregate_type": row.aggregate_type,
        "aggregate_key": row.aggregate_key,
        "occurred_at": row.created_at.isoformat(),
        "headers": row.headers,
        "payload": row.payload,
    }


def step_payload(event: dict[str, Any], action: str, step: str, execution: str = "e-1") -> dict[str, Any]:
    return {
        "workflow": "OrderSaga",
        "step": step,
        "action": action,
        "kind": "action",
        "execution": execution,
        "state": step,
        "event": event,
        "results": {},
    }


def test_steps_handler_second_invocation_returns_stored_result(
    engine: sa.Engine, db: str, dynamodb: Any, api: Any
) -> None:
    counting = Counting(create_app(schema=db).registry())
    runtime = Runtime(config(db, idempotency_table="idempotency"), engine=engine, dynamodb_client=dynamodb)
    handler = steps.make_handler(runtime, registry=counting.registry)
    event = placed_event(api, engine, db)
    payload = step_payload(event, "charge_payment", "ChargePayment")
    first = handler(payload, ctx("steps"))
    # a retry carries other results: the key is [execution, state] only
    second = handler({**payload, "results": {"ReserveInventory": {"output": {}}}}, ctx("steps"))
    assert first == second and first["amount_cents"] == 1999
    assert counting.calls == {"charge_payment": 1}
    assert count(engine, order_tables(db).payments) == 1
    assert dynamodb.scan(TableName="idempotency")["Count"] == 1
    # another state of the same execution is another key
    handler(step_payload(event, "reserve_inventory", "ReserveInventory"), ctx("steps"))
    assert counting.calls == {"charge_payment": 1, "reserve_inventory": 1}


def test_steps_handler_failure_is_not_stored(engine: sa.Engine, db: str, dynamodb: Any) -> None:
    api = command_api.make_handler(
        Runtime(config(db), engine=engine), orders_schema=db, allow_simulation=True
    )
    counting = Counting(create_app(schema=db).registry())
    runtime = Runtime(config(db, idempotency_table="idempotency"), engine=engine, dynamodb_client=dynamodb)
    handler = steps.make_handler(runtime, registry=counting.registry)
    event = placed_event(api, engine, db, {**BODY, "simulate": {"fail_payment": True}})
    payload = step_payload(event, "charge_payment", "ChargePayment")
    for _ in range(2):
        with pytest.raises(PaymentDeclined):
            handler(payload, ctx("steps"))
    assert counting.calls == {"charge_payment": 2}  # a failure is retried, not replayed
    assert count(engine, order_tables(db).payments) == 0


def test_concurrent_duplicate_waits_for_the_first_then_replays(engine: sa.Engine, db: str) -> None:
    import threading

    from examples.orders import place_order_once

    request = {**BODY}
    results: list[Any] = []
    with engine.connect() as first:
        tx = first.begin()
        answer = place_order_once(
            first, idempotency_key="k", request=request, outbox_schema=db, orders_schema=db
        )

        def duplicate() -> None:
            with engine.begin() as conn:
                results.append(
                    place_order_once(
                        conn, idempotency_key="k", request=request, outbox_schema=db, orders_schema=db
                    )
                )

        thread = threading.Thread(target=duplicate)
        thread.start()
        thread.join(0.5)
        assert thread.is_alive()  # blocked on the uncommitted key row
        tx.commit()
    thread.join(10)
    assert results[0].replayed is True and results[0].body == answer.body
    assert count(engine, order_tables(db).orders) == 1
