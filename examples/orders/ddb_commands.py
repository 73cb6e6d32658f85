"""The order command on DynamoDB: the order item and its ``OrderPlaced`` outbox item in one
``TransactWriteItems`` (both or neither), through ``outbox_relay.DynamoDbOutbox``.

The stream consumer publishes the event to the same SQS FIFO queue as the PostgreSQL relay,
and the dispatcher starts the same ``OrderSaga``. The saga keeps its own record of the order
in PostgreSQL beside its effects (``steps._adopt_dynamodb_order``): the payload says
``"placed_in": "dynamodb"`` and carries the whole order.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import outbox_relay

from .commands import AGGREGATE_TYPE, SIMULATION_FLAGS, _normalize_items
from .exceptions import InvalidRequest

__all__ = ["DEFAULT_ORDERS_TABLE", "create_orders_table", "place_order"]

DEFAULT_ORDERS_TABLE = "orders"


def create_orders_table(dynamodb_client: Any, table_name: str = DEFAULT_ORDERS_TABLE) -> None:
    """The example's business table (explicit, like a migration; never on import)."""
    dynamodb_client.create_table(
        TableName=table_name,
        KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "order_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def place_order(
    outbox: outbox_relay.DynamoDbOutbox,
    *,
    customer_id: str,
    items: Sequence[Mapping[str, Any]],
    amount_cents: int,
    order_id: uuid.UUID | None = None,
    simulate: Mapping[str, bool] | None = None,
    orders_table: str = DEFAULT_ORDERS_TABLE,
) -> tuple[uuid.UUID, uuid.UUID]:
    """Put a PENDING order (refused if the order id exists) and its ``OrderPlaced`` event in
    one transaction; returns ``(order_id, event_id)``. A cancelled transaction raises
    :class:`outbox_relay.TransactionCancelledError` and writes nothing."""
    if not isinstance(customer_id, str) or not customer_id:
        raise InvalidRequest("customer_id must be a non-empty string", field="customer_id")
    if not isinstance(amount_cents, int) or isinstance(amount_cents, bool) or amount_cents < 0:
        raise InvalidRequest("amount_cents must be a non-negative integer", field="amount_cents")
    clean_items = _normalize_items(items)
    flags = {k: bool(v) for k, v in (simulate or {}).items() if v}
    if unknown := set(flags) - set(SIMULATION_FLAGS):
        raise InvalidRequest(f"unknown simulate flags {sorted(unknown)}", field="simulate")
    order_id = order_id or uuid.uuid4()
    payload: dict[str, Any] = {
        "order_id": str(order_id),
        "customer_id": customer_id,
        "items": clean_items,
        "amount_cents": amount_cents,
        "status": "PENDING",
        "version": 1,
        "placed_in": "dynamodb",
    }
    if flags:
        payload["simulate"] = flags
    order_item = {
        "Put": {
            "TableName": orders_table,
            "Item": {
                "order_id": {"S": str(order_id)},
                "customer_id": {"S": customer_id},
                "amount_cents": {"N": str(amount_cents)},
                "status": {"S": "PENDING"},
                "items": {
                    "L": [{"M": {"sku": {"S": i["sku"]}, "qty": {"N": str(i["qty"])}}} for i in clean_items]
                },
            },
            "ConditionExpression": "attribute_not_exists(order_id)",  # an order is placed once
        }
    }
    (event_id,) = outbox.transact_write(
        [order_item],
        [
            outbox_relay.OutboxEvent(
                aggregate_type=AGGREGATE_TYPE,
                aggregate_key=str(order_id),
                event_type="OrderPlaced",
                payload=payload,
            )
        ],
    )
    return order_id, event_id
