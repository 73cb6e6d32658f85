"""(2) The tutorial relay: one row per transaction, one SendMessage-equivalent call per row.

``SELECT … LIMIT 1 FOR UPDATE SKIP LOCKED`` → build the envelope → ``publish_batch([one])`` to
the same no-op sink as (3) (:class:`outbox_relay.NullPublisher`) → ``UPDATE`` → ``COMMIT``.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

from outbox_relay import NullPublisher, OutboundMessage, OutboxEnvelope, deduplication_id, message_group_id

from .common import Ctx, fresh_schema, seed


def run_naive(dsn: str, schema: str, seconds: float) -> tuple[int, float]:
    select = (
        "SELECT id, event_id, aggregate_type, aggregate_key, event_type, payload, headers, created_at"
        f" FROM \"{schema}\".outbox WHERE state = 'pending' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED"
    )
    update = f"UPDATE \"{schema}\".outbox SET state = 'published', published_at = now() WHERE id = %s"
    sink = NullPublisher()
    done = 0
    with psycopg.connect(dsn) as conn:
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            with conn.transaction():
                row = conn.execute(select).fetchone()
                if row is None:
                    break
                rid, eid, atype, akey, etype, payload, headers, created = row
                env = OutboxEnvelope(
                    event_id=eid,
                    event_type=etype,
                    aggregate_type=atype,
                    aggregate_key=akey,
                    occurred_at=created,
                    payload=payload,
                    headers=headers,
                )
                body = env.to_json()
                sink.publish_batch(
                    [
                        OutboundMessage(
                            row_id=rid,
                            event_id=str(eid),
                            group_id=message_group_id(atype, akey),
                            deduplication_id=deduplication_id(eid),
                            body=body,
                            attributes={"event_type": {"DataType": "String", "StringValue": etype}},
                            size=len(body),
                        )
                    ]
                )
                conn.execute(update, [rid])
            done += 1
        return done, time.perf_counter() - start


def run(ctx: Ctx) -> dict[str, Any]:
    seconds = ctx.seconds(8.0, 1.5)
    with fresh_schema(ctx, "naive") as schema:
        seed(ctx, schema, ctx.scale(60_000, 10_000))
        done, took = run_naive(ctx.dsn, schema, seconds)
    ctx.log(f"  naive relay: {done / took:,.0f} rows/s")
    return {"rows": done, "seconds": round(took, 3), "rows_per_s": round(done / took, 1)}
