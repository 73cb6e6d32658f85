"""(4) Our relay end to end through the real botocore SQS client to the local endpoint.

``SqsFifoPublisher(queue_url=..., sqs_client=boto3.client("sqs", endpoint_url=...))`` against
:mod:`bench.fake_aws` running in its own process: every SendMessageBatch is answered after
20 ms, with the FIFO quotas modelled (normal mode: 300 calls/s; high-throughput mode: 300
calls/s per message group). Figures are events the relay marked published (SQS accepted) per
second of wall time, over a time-bounded drain of a seeded backlog spread over many groups.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from outbox_relay import RelayOptions, SqsFifoPublisher

from .common import Ctx, fresh_schema, seed, sqs_client
from .fake_aws import FakeAwsProcess, ServerConfig
from .relay_null import drain_relays


@dataclass(frozen=True)
class Variant:
    name: str
    options: dict[str, Any]
    relays: int = 1
    retry_mode: str = "standard"


HIGH = [
    Variant("default (concurrency=8, claim_size=200)", {}),
    Variant("concurrency=32, claim_size=1000", {"concurrency": 32, "claim_size": 1000}),
    Variant("concurrency=64, claim_size=2000", {"concurrency": 64, "claim_size": 2000}),
    Variant(
        "2 relays x (concurrency=32, claim_size=1000)", {"concurrency": 32, "claim_size": 1000}, relays=2
    ),
]
NORMAL = [
    Variant("default (concurrency=8, claim_size=200)", {}),
    Variant("concurrency=8, claim_size=1000", {"concurrency": 8, "claim_size": 1000}),
    Variant("concurrency=16, claim_size=1000", {"concurrency": 16, "claim_size": 1000}),
    Variant(
        "concurrency=16, claim_size=1000, botocore adaptive retries",
        {"concurrency": 16, "claim_size": 1000},
        retry_mode="adaptive",
    ),
    # paced just under the 300 calls/s quota: no throttling pauses, senders kept busy
    Variant(
        "concurrency=16, claim_size=1000, paced 295 calls/s",
        {"concurrency": 16, "claim_size": 1000, "max_calls_per_second": 295},
    ),
]


def measure(
    ctx: Ctx, server: FakeAwsProcess, mode: str, v: Variant, *, seconds: float, rows: int
) -> dict[str, Any]:
    server.configure(ServerConfig(sqs_mode=mode))
    with fresh_schema(ctx, f"e2e_{mode}") as schema:
        seed(ctx, schema, rows)
        opts = RelayOptions(schema=schema, listen=False, **v.options)
        pool = max(10, opts.concurrency * v.relays)
        publisher = SqsFifoPublisher(
            queue_url=server.queue_url,
            sqs_client=sqs_client(server.endpoint_url, pool=pool, retry_mode=v.retry_mode),
        )
        published, took, totals = drain_relays(
            ctx.engine, publisher, opts, relays=v.relays, max_seconds=seconds
        )
    counters = server.stats()["counters"]
    calls = counters.get("SendMessageBatch", 0)
    row = {
        "variant": v.name,
        "mode": mode,
        "events": published,
        "seconds": round(took, 3),
        "events_per_s": round(published / took, 1),
        "calls": calls,
        "calls_per_s": round(calls / took, 1),
        "throttled_calls": counters.get("SendMessageBatch.throttled", 0),
        "msgs_per_call": round(counters.get("messages", 0) / calls, 2) if calls else None,
        **totals,
    }
    ctx.log(
        f"  e2e {mode} {v.name}: {row['events_per_s']:,.0f} events/s "
        f"({row['calls_per_s']:,.0f} calls/s, {row['throttled_calls']} throttled)"
    )
    return row


def run(ctx: Ctx) -> dict[str, Any]:
    seconds = ctx.seconds(12.0, 2.0)
    out: dict[str, Any] = {}
    with FakeAwsProcess() as server:
        for mode, variants, target in (("high", HIGH, 8000), ("normal", NORMAL, 3000)):
            rows = int(target * 1.6 * seconds) + 2000
            results = [
                measure(ctx, server, mode, v, seconds=seconds, rows=rows)
                for v in (variants if not ctx.quick else variants[:2])
            ]
            out[mode] = {
                "default": results[0],
                "best": max(results, key=lambda r: r["events_per_s"]),
                "variants": results,
            }
    out["server"] = {k: v for k, v in vars(replace(ServerConfig())).items()}
    return out
