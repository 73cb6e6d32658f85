"""Shared pieces of the benchmarks: the database, fresh schemas, COPY seeding, clients."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
import sqlalchemy as sa

import outbox_relay
from outbox_relay import enqueue, migrate

EVENT_TYPE = "OrderPlaced"
AGGREGATE_TYPE = "order"


@dataclass
class Ctx:
    """What every benchmark gets: the engine, a libpq DSN and the run's scale."""

    engine: sa.Engine
    dsn: str
    quick: bool
    log: Any = print
    notes: list[str] = field(default_factory=list)
    #: figures one benchmark hands to a later one of the same run (e2e capacity → latency)
    figures: dict[str, float] = field(default_factory=dict)

    def scale(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def seconds(self, full: float, quick: float) -> float:
        return quick if self.quick else full


def make_ctx(database_url: str | None, *, quick: bool) -> Ctx:
    url = database_url or outbox_relay.embedded_postgres_url()
    engine = sa.create_engine(
        outbox_relay.embedded.sqlalchemy_url(url), pool_size=20, max_overflow=20, pool_pre_ping=False
    )
    dsn = outbox_relay.embedded.sqlalchemy_url(url, driver=None)
    return Ctx(engine=engine, dsn=dsn, quick=quick)


@contextmanager
def fresh_schema(ctx: Ctx, name: str) -> Iterator[str]:
    """A newly migrated outbox schema, dropped afterwards."""
    schema = f"bench_{name}_{uuid.uuid4().hex[:6]}"
    migrate(ctx.engine, schema=schema)
    try:
        yield schema
    finally:
        with ctx.engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def payload_for(i: int, key: str) -> dict[str, Any]:
    """A realistic order event (~230 bytes of JSON)."""
    return {
        "order_id": key,
        "customer_id": f"cust-{i % 9973:05d}",
        "amount_cents": 1000 + i % 50_000,
        "currency": "EUR",
        "lines": [{"sku": f"SKU-{i % 500:04d}", "qty": 1 + i % 3, "price_cents": 999}],
        "status": "PENDING",
        "version": 1,
    }


def group_key(i: int, *, groups: int, run: int) -> str:
    """Aggregate key of row ``i``: ``run`` consecutive rows per group, groups round-robin."""
    return f"{(i // run) % groups:08d}"


def seed(ctx: Ctx, schema: str, n: int, *, groups: int = 50_000, run: int = 1) -> None:
    """Insert ``n`` pending events: the first through ``enqueue`` (the reference shape), the
    rest by COPY of the same columns enqueue writes (txid and the other defaults apply), then
    check that a copied row looks like the enqueued one and ANALYZE."""
    with psycopg.connect(ctx.dsn) as conn:
        with conn.transaction():
            key = group_key(0, groups=groups, run=run)
            enqueue(
                conn,
                aggregate_type=AGGREGATE_TYPE,
                aggregate_key=key,
                event_type=EVENT_TYPE,
                payload=payload_for(0, key),
                schema=schema,
            )
        if n > 1:
            cols = "event_id, aggregate_type, aggregate_key, event_type, payload, headers"
            copy_sql = f'COPY "{schema}".outbox ({cols}) FROM STDIN'
            with conn.transaction(), conn.cursor() as cur, cur.copy(copy_sql) as copy:
                chunk: list[str] = []
                dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
                for i in range(1, n):
                    key = group_key(i, groups=groups, run=run)
                    # JSON without tabs, newlines or backslashes needs no COPY escaping
                    chunk.append(
                        f"{uuid.uuid4()}\t{AGGREGATE_TYPE}\t{key}\t{EVENT_TYPE}\t"
                        f"{dumps(payload_for(i, key))}\t{{}}\n"
                    )
                    if len(chunk) >= 5000:
                        copy.write("".join(chunk))
                        chunk.clear()
                if chunk:
                    copy.write("".join(chunk))
            _check_shape(conn, schema)
        conn.execute(f'ANALYZE "{schema}".outbox')
        conn.commit()


def _check_shape(conn: psycopg.Connection[Any], schema: str) -> None:
    cols = (
        "event_type, aggregate_type, jsonb_typeof(payload), headers, state, attempts, send_count,"
        " published_at IS NULL, lease_token IS NULL, txid IS NOT NULL,"
        " created_at IS NOT NULL, available_at IS NOT NULL, array(SELECT jsonb_object_keys(payload))"
    )
    rows = conn.execute(
        f'SELECT {cols} FROM "{schema}".outbox WHERE id IN '
        f'((SELECT min(id) FROM "{schema}".outbox), (SELECT max(id) FROM "{schema}".outbox))'
        " ORDER BY id"
    ).fetchall()
    if len(rows) == 2 and rows[0] != rows[1]:
        raise AssertionError(f"COPY rows differ from enqueue's: {rows[0]} vs {rows[1]}")


def pending(ctx: Ctx, schema: str) -> int:
    with ctx.engine.connect() as conn:
        return int(
            conn.exec_driver_sql(
                f"SELECT count(*) FROM \"{schema}\".outbox WHERE state = 'pending'"
            ).scalar_one()
        )


def sqs_client(endpoint_url: str, *, pool: int = 64, retry_mode: str = "standard") -> Any:
    """A real botocore SQS client for the local endpoint with the publisher's own ``Config``
    (``SqsFifoPublisher.client_config()``: timeouts, 2 attempts, no parameter validation), only
    the pool size and the retry mode chosen by the variant."""
    import boto3
    from botocore.config import Config

    from outbox_relay import SqsFifoPublisher

    config = SqsFifoPublisher.client_config().merge(
        Config(
            retries={"mode": retry_mode, "total_max_attempts": SqsFifoPublisher.TOTAL_ATTEMPTS},  # type: ignore[arg-type]
            max_pool_connections=pool,
        )
    )
    client: Any = boto3.client(  # type: ignore[call-overload]
        "sqs",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=config,
    )
    return client


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def rss_bytes(pid: int | None = None) -> int:
    with open(f"/proc/{pid or os.getpid()}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0
