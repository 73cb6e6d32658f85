"""(10) Replay: archived order events rebuilt into the example's projection (a fresh
generation), one consumer, the projection's own code per event; and the 72-hour window
arithmetic against the published figure (47 minutes on 12 Lambda consumers).

``python -m bench.replay --events 1000000`` runs it alone at any scale; ``python -m bench``
runs it at 200,000 (``--quick``: 5,000).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from typing import Any

import psycopg

from examples.orders.projection_rebuild import rebuild, verify
from examples.orders.schema import migrate_orders
from outbox_relay.replay import HandlerDestination, ReplayOptions, ReplaySelection, replay

from .common import Ctx, fresh_schema, make_ctx

#: the window of the published figure: 72 hours at 8,000 events/s
WINDOW_EVENTS = 8_000 * 72 * 3600  # 2,073,600,000
PUBLISHED_MINUTES, PUBLISHED_CONSUMERS = 47, 12


def seed_archive(ctx: Ctx, schema: str, n: int) -> None:
    """``n`` archived order events by COPY: per order an OrderPlaced (v1) then an
    OrderConfirmed (v2), orders interleaved in blocks of 1,000 as live traffic is."""
    cols = "id, event_id, aggregate_type, aggregate_key, event_type, payload, headers, state, published_at"
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    with psycopg.connect(ctx.dsn) as conn, conn.cursor() as cur:
        with cur.copy(f'COPY "{schema}".outbox_archive ({cols}) FROM STDIN') as copy:
            row_id, chunk = 0, []
            block = 1000
            for start in range(0, n // 2, block):
                orders = [str(uuid.uuid4()) for _ in range(min(block, n // 2 - start))]
                for version, (event_type, status) in enumerate(
                    (("OrderPlaced", "PENDING"), ("OrderConfirmed", "CONFIRMED")), start=1
                ):
                    for i, oid in enumerate(orders):
                        row_id += 1
                        payload = {"order_id": oid, "status": status, "version": version}
                        if version == 1:
                            payload |= {"customer_id": f"c{(start + i) % 9973}", "amount_cents": 1000 + i}
                        chunk.append(
                            f"{row_id}\t{uuid.uuid4()}\torder\t{oid}\t{event_type}\t{dumps(payload)}\t{{}}"
                            "\tpublished\t2026-01-01 00:00:00+00\n"
                        )
                if len(chunk) >= 10_000:
                    copy.write("".join(chunk))
                    chunk.clear()
            if chunk:
                copy.write("".join(chunk))
        conn.commit()
        cur.execute(f'ANALYZE "{schema}".outbox_archive')
        conn.commit()


def window_arithmetic(events_per_s: float) -> dict[str, Any]:
    """How long the published window takes at ``events_per_s`` per consumer."""
    published_per_consumer = WINDOW_EVENTS / (PUBLISHED_MINUTES * 60) / PUBLISHED_CONSUMERS
    one = WINDOW_EVENTS / events_per_s if events_per_s else float("inf")
    return {
        "window_events": WINDOW_EVENTS,
        "hours_one_consumer": round(one / 3600, 1),
        "minutes_12_consumers": round(one / PUBLISHED_CONSUMERS / 60, 1),
        "consumers_for_47_minutes": round(one / (PUBLISHED_MINUTES * 60), 1),
        "published_minutes_12_consumers": PUBLISHED_MINUTES,
        "published_events_per_s_per_consumer": round(published_per_consumer),
    }


def run(ctx: Ctx, *, events: int | None = None) -> dict[str, Any]:
    n = events if events is not None else ctx.scale(200_000, 5_000)
    n -= n % 2
    with fresh_schema(ctx, "replay") as outbox:
        orders = f"{outbox}_orders"
        migrate_orders(ctx.engine, schema=orders)
        try:
            t0 = time.perf_counter()
            seed_archive(ctx, outbox, n)
            seeded = time.perf_counter() - t0
            result = rebuild(ctx.engine, generation=2, schema=orders, outbox_schema=outbox, page_size=1000)
            check = verify(ctx.engine, generation=2, schema=orders)
            # the engine alone (read, envelope, checkpoint; the handler does nothing), on a share
            null_n = min(n, 200_000)
            t1 = time.perf_counter()
            null = replay(
                ctx.engine,
                destination=HandlerDestination("null", lambda conn, evs: None),
                selection=ReplaySelection(to_id=null_n),
                options=ReplayOptions(run_id="bench-null", schema=outbox, page_size=1000),
                count_first=False,
            )
            null_seconds = time.perf_counter() - t1
        finally:
            with ctx.engine.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{orders}" CASCADE')
    rate = result.delivered / result.seconds
    out = {
        "events": n,
        "orders": n // 2,
        "seed_seconds": round(seeded, 1),
        "seconds": round(result.seconds, 1),
        "events_per_s": round(rate, 1),
        "rebuilt_rows": check.rebuilt_rows,
        "consumers": 1,
        "engine_only_events": null.delivered,
        "engine_only_events_per_s": round(null.delivered / null_seconds, 1),
        **window_arithmetic(rate),
    }
    if result.delivered != n or check.rebuilt_rows != n // 2:
        raise AssertionError(f"replayed {result.delivered} of {n}, rebuilt {check.rebuilt_rows} of {n // 2}")
    ctx.log(
        f"  replay→projection {n:,} archived events: {rate:,.0f} ev/s; 72 h window: "
        f"{out['hours_one_consumer']} h on one consumer, {out['minutes_12_consumers']} min on 12"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replay", description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--database-url")
    args = parser.parse_args(argv)
    ctx = make_ctx(args.database_url, quick=False)
    try:
        print(json.dumps(run(ctx, events=args.events), indent=2))
    finally:
        ctx.engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
