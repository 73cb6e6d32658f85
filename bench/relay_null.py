"""(3) Our relay to a no-op sink: ``Relay`` with :class:`outbox_relay.NullPublisher`.

Same code path as production (claim group heads → build envelopes → pack batches → publish on
the thread pool → fenced mark); only the last call goes nowhere. Several ``RelayOptions`` are
tried; the default is always reported next to the best.

The default is run ``PAIRS`` times, each right after a raw-SQL drain of the same size on a fresh
schema, and the ratio is the median of the pairs: one raw drain of 60,000 rows takes about two
seconds, and single runs of it ranged 24K-38K rows/s within one quiet hour on this machine, so
a ratio against one of them moved by half.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from outbox_relay import NullPublisher, Publisher, Relay, RelayOptions

from . import raw_sql
from .common import Ctx, fresh_schema, seed

PAIRS = 3


@dataclass(frozen=True)
class Variant:
    name: str
    options: dict[str, Any]
    relays: int = 1  # relay instances running at once (N copies are safe by design)
    groups: int = 50_000
    run: int = 1  # consecutive rows per aggregate in the seeded data


VARIANTS = [
    Variant("default (claim_size=200, pipelines=8)", {}),
    Variant("pipelines=4 (the default before 2026-12-02)", {"pipelines": 4}),
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


def _drain_variant(ctx: Ctx, v: Variant, n: int) -> dict[str, Any]:
    with fresh_schema(ctx, "null") as schema:
        seed(ctx, schema, n, groups=v.groups, run=v.run)
        opts = RelayOptions(schema=schema, listen=False, **v.options)
        published, took, totals = drain_relays(ctx.engine, NullPublisher(), opts, relays=v.relays)
    return {
        "variant": v.name,
        "rows": published,
        "seconds": round(took, 3),
        "rows_per_s": round(published / took, 1),
        **totals,
    }


def run(ctx: Ctx) -> dict[str, Any]:
    n = ctx.scale(60_000, 10_000)
    out: list[dict[str, Any]] = []
    pairs: list[tuple[float, float]] = []
    for _ in range(PAIRS if not ctx.quick else 1):
        raw = raw_sql.measure(ctx, n)["rows_per_s"]
        row = _drain_variant(ctx, VARIANTS[0], n)
        pairs.append((row["rows_per_s"], raw))
        ratio = row["rows_per_s"] / raw
        ctx.log(f"  pair: raw SQL {raw:,.0f} rows/s, relay default {row['rows_per_s']:,.0f} ({ratio:.2f}x)")
    ratios = [relay / raw for relay, raw in pairs]
    default = {
        **row,
        "rows_per_s": statistics.median(r for r, _ in pairs),
        "paired_raw_rows_per_s": statistics.median(raw for _, raw in pairs),
        "paired_ratio": round(statistics.median(ratios), 3),
        "pairs": [{"relay_rows_per_s": r, "raw_rows_per_s": w} for r, w in pairs],
    }
    out.append(default)
    for v in VARIANTS[1:] if not ctx.quick else VARIANTS[1:3]:
        row = _drain_variant(ctx, v, n)
        ctx.log(f"  relay→NullPublisher {v.name}: {row['rows_per_s']:,.0f} rows/s")
        out.append(row)
    best = max(out, key=lambda r: r["rows_per_s"])
    return {"default": default, "best": best, "variants": out}
