"""HTTP command API of the order domain (Lambda Function URL / HTTP API events, payload 2.0),
routed by Powertools' ``LambdaFunctionUrlResolver``.

``POST /orders`` validates the body with a Powertools Parser
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
import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from aws_lambda_powertools.event_handler import LambdaFunctionUrlResolver, Response, content_types
from aws_lambda_powertools.utilities.parser import ValidationError, parse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import exc as sa_exc

from saga_outbox.lambdas.exceptions import DatabaseUnavailable

from .commands import place_order_once
from .exceptions import IdempotencyConflict, InvalidRequest
from .schema import order_tables

__all__ = ["OrderItem", "PlaceOrderRequest", "Simulate", "build_resolver", "handle_http"]

IDEMPOTENCY_HEADER = "idempotency-key"


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
) -> Response[str]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(body),
        headers=headers,
    )


def _error(status: int, message: str, *, field: str | None = None, **extra: Any) -> Response[str]:
    return _response(status, {"message": message, "field": field, **extra})


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


def build_resolver(
    engine: sa.Engine,
    *,
    orders_schema: str = "orders",
    outbox_schema: str = "saga_outbox",
    allow_simulation: bool = False,
) -> LambdaFunctionUrlResolver:
    """The routes, on Powertools' Function URL resolver (API Gateway HTTP APIs send the same
    payload format 2.0)."""
    resolver = LambdaFunctionUrlResolver()

    @resolver.post("/orders")
    def place() -> Response[str]:
        event = resolver.current_event
        key = event.headers.get(IDEMPOTENCY_HEADER)
        try:
            if key is not None and not (1 <= len(key) <= 255):
                raise InvalidRequest("Idempotency-Key must be 1-255 characters", field="Idempotency-Key")
            request = parse_place_order(event.raw_event, allow_simulation=allow_simulation)
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

    @resolver.get("/orders/<order_id>")
    def get(order_id: str) -> Response[str]:
        try:
            parsed = uuid.UUID(order_id)
        except ValueError:
            return _error(400, f"order id {order_id!r} is not a UUID", field="order_id")
        return _get_order(engine, parsed, orders_schema)

    @resolver.not_found
    def not_supported(exc: Exception) -> Response[str]:
        event = resolver.current_event
        return _error(
            405, f"{event.http_method} {event.path} is not supported; use POST /orders or GET /orders/<id>"
        )

    return resolver


def handle_http(
    event: Mapping[str, Any],
    *,
    engine: sa.Engine,
    orders_schema: str = "orders",
    outbox_schema: str = "saga_outbox",
    allow_simulation: bool = False,
    context: Any = None,
) -> dict[str, Any]:
    """Answer one Function URL / HTTP API event (payload format 2.0)."""
    resolver = build_resolver(
        engine, orders_schema=orders_schema, outbox_schema=outbox_schema, allow_simulation=allow_simulation
    )
    return dict(resolver.resolve(dict(event), context))


def _get_order(engine: sa.Engine, order_id: uuid.UUID, orders_schema: str) -> Response[str]:
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
