"""(1) The raw-SQL ceiling: a hand-written psycopg loop claiming 500 rows per transaction.

``SELECT … FOR UPDATE SKIP LOCKED LIMIT 500`` + ``UPDATE … SET state='published'``: no
per-group ordering, no leases, no publishing. What the database alone allows on this box.
"""

from __future__ import annotations

from typing import Any

import psycopg

from .common import Ctx, Timer, fresh_schema, seed

BATCH = 500


def drain_raw(dsn: str, schema: str, batch: int = BATCH) -> int:
    select = (
        "SELECT id, event_id, aggregate_type, aggregate_key, event_type, payload, headers, created_at"
        f" FROM \"{schema}\".outbox WHERE state = 'pending' ORDER BY id LIMIT {batch}"
        " FOR UPDATE SKIP LOCKED"
    )
    update = f"UPDATE \"{schema}\".outbox SET state = 'published', published_at = now() WHERE id = ANY(%s)"
    done = 0
    with psycopg.connect(dsn) as conn:
        while True:
            with conn.transaction():
                rows = conn.execute(select).fetchall()
                if not rows:
                    return done
                conn.execute(update, [[r[0] for r in rows]])
            done += len(rows)


def measure(ctx: Ctx, n: int) -> dict[str, Any]:
    """One raw drain of ``n`` seeded rows on a fresh schema (relay_null pairs its runs with it)."""
    with fresh_schema(ctx, "raw") as schema:
        seed(ctx, schema, n)
        with Timer() as t:
            done = drain_raw(ctx.dsn, schema)
    return {
        "rows": done,
        "seconds": round(t.seconds, 3),
        "rows_per_s": round(done / t.seconds, 1),
        "batch": BATCH,
    }


def run(ctx: Ctx) -> dict[str, Any]:
    out = measure(ctx, ctx.scale(60_000, 10_000))
    ctx.log(f"  raw SQL ceiling: {out['rows_per_s']:,.0f} rows/s")
    return out
