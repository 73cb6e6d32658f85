"""(8) The price of per-aggregate order at enqueue (issue 12, target 6).

``enqueue`` takes a transaction-scoped advisory lock on the aggregate before the row's id is
drawn, so one aggregate's ids follow commit order. This measures enqueue throughput with that
lock and, *inside the bench only*, without it (the library always takes it): the INSERT is run
with the lock call removed from its SQL, for the duration of one measurement.

Shapes: single-event transactions (one ``enqueue`` + ``COMMIT``) and 100-event transactions
(``enqueue_many``), from one psycopg connection, each event on its own aggregate (the lock's
cost, not contention); and 4 writers on the same 8 aggregates, where the lock also serializes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from outbox_relay import enqueue, enqueue_many, writer

from .common import AGGREGATE_TYPE, EVENT_TYPE, Ctx, fresh_schema, payload_for

_LOCK_CALL = "pg_advisory_xact_lock(hashtextextended(%(lock_key)s, 0)),"


@contextmanager
def _without_group_lock() -> Iterator[None]:
    """Bench-only: enqueue's INSERT without the advisory lock (and enqueue_many's lock query as
    a no-op), to show what the lock costs. Never used outside this module."""
    sql = writer._SQL
    assert _LOCK_CALL in sql, "enqueue's SQL changed: update the bench"
    real_fetch = writer._fetch

    def fetch(conn: Any, statement: str, params: dict[str, Any]) -> Any:
        if statement.startswith("SELECT count(pg_advisory_xact_lock"):
            return 0
        return real_fetch(conn, statement, params)

    writer._SQL = sql.replace(_LOCK_CALL, "")
    writer._fetch = fetch  # type: ignore[assignment]
    try:
        yield
    finally:
        writer._SQL = sql
        writer._fetch = real_fetch  # type: ignore[assignment]


def _write(dsn: str, schema: str, *, per_txn: int, seconds: float, keys: int | None, tag: str) -> int:
    """Commit transactions of ``per_txn`` events for ``seconds``; return events written.
    ``keys``: aggregates shared by all writers (None: a fresh aggregate per event)."""
    done = 0
    with psycopg.connect(dsn) as conn:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            events: list[dict[str, Any]] = []
            for j in range(per_txn):
                i = done + j
                key = f"{tag}-{i}" if keys is None else f"hot-{i % keys}"
                events.append(
                    {
                        "aggregate_type": AGGREGATE_TYPE,
                        "aggregate_key": key,
                        "event_type": EVENT_TYPE,
                        "payload": payload_for(i, key),
                    }
                )
            with conn.transaction():
                if per_txn == 1:
                    enqueue(conn, schema=schema, **events[0])
                else:
                    enqueue_many(conn, events, schema=schema)
            done += per_txn
    return done


def _measure(ctx: Ctx, *, lock: bool, per_txn: int, writers: int, keys: int | None) -> float:
    seconds = ctx.seconds(4.0, 1.0)
    with fresh_schema(ctx, "enq") as schema:
        counts = [0] * writers

        def work(n: int) -> None:
            counts[n] = _write(ctx.dsn, schema, per_txn=per_txn, seconds=seconds, keys=keys, tag=f"w{n}")

        started = time.perf_counter()
        with _without_group_lock() if not lock else _nothing():
            threads = [threading.Thread(target=work, args=(n,)) for n in range(writers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        return sum(counts) / (time.perf_counter() - started)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


SHAPES: dict[str, dict[str, Any]] = {
    "single_row_txn": {"per_txn": 1, "writers": 1, "keys": None},
    "100_row_txn": {"per_txn": 100, "writers": 1, "keys": None},
    "single_row_txn_4_writers_8_hot_aggregates": {"per_txn": 1, "writers": 4, "keys": 8},
}


def run(ctx: Ctx) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, shape in SHAPES.items():
        # alternate with/without twice: the box is shared, a ratio of neighbours is fairer
        rates: dict[str, list[float]] = {"with_lock": [], "without_lock": []}
        for _ in range(1 if ctx.quick else 2):
            rates["with_lock"].append(_measure(ctx, lock=True, **shape))
            rates["without_lock"].append(_measure(ctx, lock=False, **shape))
        with_lock = max(rates["with_lock"])
        without = max(rates["without_lock"])
        out[name] = {
            "events_per_s_with_lock": round(with_lock, 1),
            "events_per_s_without_lock": round(without, 1),
            "with_vs_without": round(with_lock / without, 3) if without else None,
            "runs": {k: [round(x, 1) for x in v] for k, v in rates.items()},
        }
        ctx.log(
            f"  enqueue {name}: {with_lock:,.0f} events/s with the group lock, "
            f"{without:,.0f} without ({with_lock / without:.2f}x)"
        )
    return out
