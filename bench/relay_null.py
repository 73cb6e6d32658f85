"""(3) Our relay to a no-op sink: ``Relay`` with :class:`outbox_relay.NullPublisher`.

Same code path as production (claim group heads → build envelopes → pack batches → publish on
the thread pool → fenced mark); only the last call goes nowhere. Several ``RelayOptions`` are
tried; the default is always reported next to the best.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from outbox_relay import NullPublisher, Publisher, Relay, RelayOptions

from .common import Ctx, fresh_schema, seed


@dataclass(frozen=True)
class Variant:
    name: str
    options: dict[str, Any]
    relays: int = 1  # relay instances running at once (N copies are safe by design)
    groups: int = 50_000
    run: int = 1  # consecutive rows per aggregate in the seeded data


VARIANTS = [
    Variant("default (claim_size=200)", {}),
    Variant("claim_size=500", {"claim_size": 500}),
    Variant("claim_size=1000", {"claim_size": 1000}),
    Variant("claim_size=2000", {"claim_size": 2000}),
    Variant("claim_size=1000, 2 relays", {"claim_size": 1000}, relays=2),
    Variant("default, 10 rows/aggregate", {}, groups=5_000, run=10),
    Variant(
        "claim_size=1000, rows_per_group=10, 10 rows/aggregate",
        {"claim_size": 1000, "rows_per_group": 10},
        groups=5_000,
        run=10,
    ),
]


def drain_relays(
    engine: sa.Engine,
    publisher: Publisher,
    options: RelayOptions,
    *,
    relays: int = 1,
    max_seconds: float = 600.0,
) -> tuple[int, float, dict[str, int]]:
    """Run ``relays`` Relay instances (each in its own thread) until the outbox is drained or
    ``max_seconds`` pass; return (published, seconds, totals)."""
    instances = [Relay(engine=engine, publisher=publisher, options=options) for _ in range(relays)]
    for r in instances:
        r.check()
    results: list[Any] = [None] * relays

    def work(i: int) -> None:
        results[i] = instances[i].drain(max_seconds=max_seconds)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(relays)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.perf_counter() - start
    for r in instances:
        r.close()
    totals = {
        "failed": sum(x.failed for x in results),
        "dead": sum(x.dead for x in results),
        "remaining": min(x.remaining for x in results),
    }
    return sum(x.published for x in results), took, totals


def run(ctx: Ctx) -> dict[str, Any]:
    n = ctx.scale(60_000, 10_000)
    out: list[dict[str, Any]] = []
    for v in VARIANTS if not ctx.quick else VARIANTS[:3]:
        with fresh_schema(ctx, "null") as schema:
            seed(ctx, schema, n, groups=v.groups, run=v.run)
            opts = RelayOptions(schema=schema, listen=False, **v.options)
            published, took, totals = drain_relays(ctx.engine, NullPublisher(), opts, relays=v.relays)
        row = {
            "variant": v.name,
            "rows": published,
            "seconds": round(took, 3),
            "rows_per_s": round(published / took, 1),
            **totals,
        }
        ctx.log(f"  relay→NullPublisher {v.name}: {row['rows_per_s']:,.0f} rows/s")
        out.append(row)
    best = max(out, key=lambda r: r["rows_per_s"])
    return {"default": out[0], "best": best, "variants": out}
