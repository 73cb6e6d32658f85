"""Commands of the order domain, written on outbox_relay's public API as any user would.

:func:`place_order` joins the caller's transaction (SQLAlchemy Session or Connection) and never
commits: the order row and its ``OrderPlaced`` outbox row commit together or not at all.
:func:`place_order_once` adds HTTP-style idempotency (``Idempotency-Key``) in the same
transaction, used by the command API.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm
from sqlalchemy.dialects.postgresql import insert as pg_insert

import outbox_relay

from .exceptions import IdempotencyConflict, InvalidRequest
from .schema import DEFAULT_ORDERS_SCHEMA, order_tables

__all__ = [
    "AGGREGATE_TYPE",
    "CommandResult",
    "place_order",
    "place_order_once",
    "request_fingerprint",
]

AGGREGATE_TYPE = "order"
SIMULATION_FLAGS = ("fail_inventory", "fail_payment", "fail_shipping", "fail_refund")


def _connection(target: sa.orm.Session | sa.Connection) -> sa.Connection:
    if isinstance(target, sa.orm.Session):
        return target.connection()
    if isinstance(target, sa.Connection):
        return target
    raise TypeError(f"expected a SQLAlchemy Session or Connection, got {type(target).__name__}")


def _normalize_items(items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(items, str | bytes) or not isinstance(items, Sequence) or not items:
        raise InvalidRequest("items must be a non-empty list", field="items")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise InvalidRequest(f"items.{i} must be an object", field=f"items.{i}")
        sku, qty = item.get("sku"), item.get("qty")
        if not isinstance(sku, str) or not sku:
            raise InvalidRequest(f"items.{i}.sku must be a non-empty string", field=f"items.{i}.sku")
        if not isinstance(qty, int) or isinstance(qty, bool) or qty <= 0:
            raise InvalidRequest(f"items.{i}.qty must be a positive integer", field=f"items.{i}.qty")
        out.append(dict(item))
    return out


def place_order(
    target: sa.orm.Session | sa.Connection,
    *,
    customer_id: str,
    items: Sequence[Mapping[str, Any]],
    amount_cents: int,
    order_id: uuid.UUID | None = None,
    simulate: Mapping[str, bool] | None = None,
    outbox_schema: str = "saga_outbox",
    orders_schema: str = DEFAULT_ORDERS_SCHEMA,
) -> uuid.UUID:
    """Insert a PENDING order and enqueue ``OrderPlaced`` in the caller's transaction.

    ``simulate`` (demo only) carries failure flags (``fail_payment``, ``fail_shipping``,
    ``fail_refund``, ``fail_inventory``) in the event, where the saga steps read them.
    Never commits; returns the order id."""
    if not isinstance(customer_id, str) or not customer_id:
        raise InvalidRequest("customer_id must be a non-empty string", field="customer_id")
    if not isinstance(amount_cents, int) or isinstance(amount_cents, bool) or amount_cents < 0:
        raise InvalidRequest("amount_cents must be a non-negative integer", field="amount_cents")
    clean_items = _normalize_items(items)
    flags = {k: bool(v) for k, v in (simulate or {}).items() if v}
    unknown = set(flags) - set(SIMULATION_FLAGS)
    if unknown:
        raise InvalidRequest(f"unknown simulate flags {sorted(unknown)}", field="simulate")
    order_id = order_id or uuid.uuid4()
    tables = order_tables(orders_schema)
    conn = _connection(target)
    conn.execute(
        tables.orders.insert().values(
            id=order_id,
            customer_id=customer_id,
            items=clean_items,
            amount_cents=amount_cents,
            status="PENDING",
            version=1,
        )
    )
    payload: dict[str, Any] = {
        "order_id": str(order_id),
        "customer_id": customer_id,
        "items": clean_items,
        "amount_cents": amount_cents,
        "status": "PENDING",
        "version": 1,
    }
    if flags:
        payload["simulate"] = flags
    outbox_relay.enqueue(
        target,
        aggregate_type=AGGREGATE_TYPE,
        aggregate_key=str(order_id),
        event_type="OrderPlaced",
        payload=payload,
        schema=outbox_schema,
    )
    return order_id


def request_fingerprint(body: Mapping[str, Any]) -> str:
    """Stable hash of a request body (key order and whitespace do not matter)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class CommandResult:
    status_code: int
    body: dict[str, Any]
    replayed: bool


def place_order_once(
    conn: sa.Connection,
    *,
    idempotency_key: str | None,
    request: Mapping[str, Any],
    outbox_schema: str = "saga_outbox",
    orders_schema: str = DEFAULT_ORDERS_SCHEMA,
) -> CommandResult:
    """Place an order unless ``idempotency_key`` was already used; then return the first answer.

    Runs in the caller's transaction (never commits). The key row, the order and the outbox
    row commit together. A concurrent request with the same key blocks on the uncommitted key
    row until the first commits (then replays its answer) or rolls back (then proceeds).
    The same key with a different body raises :class:`IdempotencyConflict`."""
    tables = order_tables(orders_schema)
    fingerprint = request_fingerprint(request)
    if idempotency_key is not None:
        claimed = conn.execute(
            pg_insert(tables.command_requests)
            .values(idempotency_key=idempotency_key, request_hash=fingerprint, status_code=0, response={})
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
            .returning(tables.command_requests.c.idempotency_key)
        ).first()
        if claimed is None:
            row = conn.execute(
                sa.select(
                    tables.command_requests.c.request_hash,
                    tables.command_requests.c.status_code,
                    tables.command_requests.c.response,
                ).where(tables.command_requests.c.idempotency_key == idempotency_key)
            ).one()
            if row.request_hash != fingerprint:
                raise IdempotencyConflict(
                    f"Idempotency-Key {idempotency_key!r} was already used with a different request body"
                )
            return CommandResult(status_code=row.status_code, body=dict(row.response), replayed=True)
    order_id = place_order(
        conn,
        customer_id=request["customer_id"],
        items=request["items"],
        amount_cents=request["amount_cents"],
        simulate=request.get("simulate"),
        outbox_schema=outbox_schema,
        orders_schema=orders_schema,
    )
    body = {"order_id": str(order_id), "status": "PENDING"}
    if idempotency_key is not None:
        conn.execute(
            tables.command_requests.update()
            .where(tables.command_requests.c.idempotency_key == idempotency_key)
            .values(status_code=202, response=body, order_id=order_id)
        )
    return CommandResult(status_code=202, body=body, replayed=False)
