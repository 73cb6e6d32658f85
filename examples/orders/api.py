"""HTTP command API of the order domain (Lambda Function URL / API Gateway proxy events).

``POST /orders`` (any path but ``/orders/<id>``) validates the body with a Powertools Parser
(pydantic) model and, in ONE PostgreSQL transaction, records the ``Idempotency-Key``, inserts
the order and enqueues ``OrderPlaced``; answers ``202 {"order_id", "status"}``.
``GET /orders/<id>`` returns the order's status and its read model (for demos).

Why the idempotency record lives in PostgreSQL (``command_requests``) and not in a DynamoDB
idempotency table: the key row commits in the same transaction as the order and its outbox row.
There is no window in which the order exists but the key does not (a Lambda dying between a
DynamoDB write and the SQL COMMIT), nor a stale "in progress" record to expire: a concurrent
duplicate simply waits on the uncommitted key row and then replays the committed answer, or
proceeds if the first transaction rolled back.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from aws_lambda_powertools.utilities.parser import ValidationError, parse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import exc as sa_exc

from saga_outbox.lambdas.exceptions import DatabaseUnavailable

from .commands import place_order_once
from .exceptions import IdempotencyConflict, InvalidRequest
from .schema import order_tables

__all__ = ["OrderItem", "PlaceOrderRequest", "Simulate", "handle_http"]

IDEMPOTENCY_HEADER = "idempotency-key"
_ORDER_PATH = re.compile(r"^/orders/([0-9a-fA-F-]{36})/?$")


class OrderItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sku: str = Field(min_length=1, max_length=64)
    qty: int = Field(gt=0, le=10_000)


class Simulate(BaseModel):
    """Failure flags for demos; accepted only when ALLOW_SIMULATION is on."""

    model_config = ConfigDict(extra="forbid")
    fail_inventory: bool = False
    fail_payment: bool = False
    fail_shipping: bool = False
    fail_refund: bool = False


class PlaceOrderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer_id: str = Field(min_length=1, max_length=128)
    items: list[OrderItem] = Field(min_length=1, max_length=100)
    amount_cents: int = Field(ge=0, le=100_000_000)
    simulate: Simulate | None = None


def _response(
    status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **(headers or {})},
        "body": json.dumps(body),
    }


def _error(status: int, message: str, *, field: str | None = None, **extra: Any) -> dict[str, Any]:
    return _response(status, {"message": message, "field": field, **extra})


def _method(event: Mapping[str, Any]) -> str:
    method = event.get("httpMethod") or event.get("requestContext", {}).get("http", {}).get("method") or ""
    return str(method).upper()


def _path(event: Mapping[str, Any]) -> str:
    return str(event.get("rawPath") or event.get("path") or "/")


def _header(event: Mapping[str, Any], name: str) -> str | None:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name:
            return str(value)
    return None


def _body(event: Mapping[str, Any]) -> Any:
    raw = event.get("body")
    if raw is None or raw == "":
        raise InvalidRequest("request body is required (a JSON object)", field="body")
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(raw).decode("utf-8")
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidRequest("request body is not valid base64 UTF-8", field="body") from exc
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}", field="body") from exc


def parse_place_order(event: Mapping[str, Any], *, allow_simulation: bool) -> PlaceOrderRequest:
    """Validate the body; :class:`InvalidRequest` names the first offending field."""
    body = _body(event)
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object", field="body")
    try:
        request = parse(event=body, model=PlaceOrderRequest)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidRequest(f"{field}: {first['msg']}", field=field) from exc
    if request.simulate is not None and not allow_simulation:
        raise InvalidRequest("simulate: failure simulation is disabled (ALLOW_SIMULATION)", field="simulate")
    return request


def handle_http(
    event: Mapping[str, Any],
    *,
    engine: sa.Engine,
    orders_schema: str = "orders",
    outbox_schema: str = "saga_outbox",
    allow_simulation: bool = False,
) -> dict[str, Any]:
    """Answer one HTTP event (API Gateway REST/HTTP API proxy or Function URL)."""
    method, path = _method(event), _path(event)
    match = _ORDER_PATH.match(path)
    if method == "GET" and match:
        return _get_order(engine, uuid.UUID(match.group(1)), orders_schema)
    if method != "POST" or match:
        return _error(405, f"{method or '?'} {path} is not supported; use POST /orders or GET /orders/<id>")
    key = _header(event, IDEMPOTENCY_HEADER)
    try:
        if key is not None and not (1 <= len(key) <= 255):
            raise InvalidRequest("Idempotency-Key must be 1-255 characters", field="Idempotency-Key")
        request = parse_place_order(event, allow_simulation=allow_simulation)
        with engine.begin() as conn:
            result = place_order_once(
                conn,
                idempotency_key=key,
                request=request.model_dump(exclude_none=True),
                outbox_schema=outbox_schema,
                orders_schema=orders_schema,
            )
    except InvalidRequest as exc:
        return _error(400, str(exc), field=exc.field)
    except IdempotencyConflict as exc:
        return _error(422, str(exc), field="Idempotency-Key")
    except sa_exc.DBAPIError as exc:
        raise DatabaseUnavailable(f"placing the order failed: {exc.orig or exc}") from exc
    headers = {"Location": f"/orders/{result.body.get('order_id')}"}
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    return _response(result.status_code, result.body, headers)


def _get_order(engine: sa.Engine, order_id: uuid.UUID, orders_schema: str) -> dict[str, Any]:
    t = order_tables(orders_schema)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sa.select(
                    t.orders.c.status, t.orders.c.version, t.orders.c.amount_cents, t.orders.c.customer_id
                ).where(t.orders.c.id == order_id)
            ).first()
            view = conn.execute(
                sa.select(t.order_view.c.status, t.order_view.c.version).where(
                    t.order_view.c.order_id == order_id
                )
            ).first()
    except sa_exc.DBAPIError as exc:
        raise DatabaseUnavailable(f"reading order {order_id} failed: {exc.orig or exc}") from exc
    if row is None:
        return _error(404, f"order {order_id} not found", field="order_id")
    return _response(
        200,
        {
            "order_id": str(order_id),
            "customer_id": row.customer_id,
            "amount_cents": row.amount_cents,
            "status": row.status,
            "version": row.version,
            "view": None if view is None else {"status": view.status, "version": view.version},
        },
    )
