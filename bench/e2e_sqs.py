"""(4) Our relay end to end through the real botocore SQS client to the local endpoint.

``SqsFifoPublisher(queue_url=..., sqs_client=boto3.client("sqs", endpoint_url=...))`` against
:mod:`bench.fake_aws` running in its own process: every SendMessageBatch is answered after
20 ms, with the FIFO quotas modelled (normal mode: 300 calls/s; high-throughput mode: 300
calls/s per message group). Figures are events the relay marked published (SQS accepted) per
second of wall time, over a time-bounded drain of a seeded backlog spread over many groups.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
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
    #: >1: ``saga-outbox relay --processes N --drain`` (one GIL per process) instead of threads
    processes: int = 1


HIGH = [
    Variant("default (concurrency=16, pipelines=8, claim_size=200)", {}),
    Variant("concurrency=8, pipelines=4 (defaults before 2026-12-02)", {"concurrency": 8, "pipelines": 4}),
    Variant("concurrency=32, claim_size=1000", {"concurrency": 32, "claim_size": 1000}),
    Variant("concurrency=64, claim_size=2000", {"concurrency": 64, "claim_size": 2000}),
    Variant(
        "2 relays x (concurrency=32, claim_size=1000)", {"concurrency": 32, "claim_size": 1000}, relays=2
    ),
    Variant("--processes 2 (default options)", {}, processes=2),
    Variant("--processes 1 (default options, CLI)", {}, processes=1),
]
NORMAL = [
    # the relay reads FifoThroughputLimit=perQueue at check() and paces itself to 294 calls/s
    Variant("default (concurrency=16, pipelines=8, paced to the queue's quota)", {}),
    Variant("default options, unpaced", {"max_calls_per_second": 100_000}),
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
        server_cpu0, cpu0 = server.cpu_seconds(), time.process_time()
        if v.processes > 1 or v.name.startswith("--processes"):
            published, took, totals, relay_cpu = _drain_processes(ctx, server, schema, v, seconds)
        else:
            publisher = SqsFifoPublisher(
                queue_url=server.queue_url,
                sqs_client=sqs_client(server.endpoint_url, pool=pool, retry_mode=v.retry_mode),
            )
            published, took, totals = drain_relays(
                ctx.engine, publisher, opts, relays=v.relays, max_seconds=seconds
            )
            relay_cpu = time.process_time() - cpu0  # the relay is the only work of this process now
        server_cpu = server.cpu_seconds() - server_cpu0
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
        # issue 12 target 2: CPU of the relay per 1,000 published events, and how busy the fake
        # endpoint was (its CPU over the wall time, in cores, and its share of relay+endpoint)
        "relay_cpu_ms_per_1k_events": round(relay_cpu * 1e6 / published, 1) if published else None,
        "relay_cpu_cores": round(relay_cpu / took, 3),
        "endpoint_cpu_cores": round(server_cpu / took, 3),
        "endpoint_cpu_share": round(server_cpu / (server_cpu + relay_cpu), 3) if relay_cpu else None,
        "processes": v.processes,
        "cpu_count": os.cpu_count(),
        **totals,
    }
    ctx.log(
        f"  e2e {mode} {v.name}: {row['events_per_s']:,.0f} events/s "
        f"({row['calls_per_s']:,.0f} calls/s, {row['throttled_calls']} throttled)"
    )
    return row


def _drain_processes(
    ctx: Ctx, server: FakeAwsProcess, schema: str, v: Variant, seconds: float
) -> tuple[int, float, dict[str, Any], float]:
    """``saga-outbox relay --processes N --drain``: the publisher builds its own client, as in
    production. Returns (published, seconds, totals, relay CPU seconds of the children)."""
    argv = [sys.executable, "-m", "outbox_relay.cli", "relay", "--schema", schema, "--no-listen"]
    argv += ["--queue-url", server.queue_url, "--endpoint-url", server.endpoint_url]
    argv += ["--drain", str(seconds), "--processes", str(v.processes)]
    for key, value in v.options.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    env = {
        **os.environ,
        "DATABASE_URL": ctx.dsn,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    before = os.times()
    started = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    took = time.perf_counter() - started
    after = os.times()
    # children's CPU (waited for): the relay processes, and the parent that only waits
    relay_cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    totals = {k: result.get(k) for k in ("failed", "dead", "remaining")}
    # wall time includes interpreter start-up of the children: use the drains' own seconds
    return int(result["published"]), float(result.get("seconds") or took), totals, relay_cpu


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
    ctx.figures["e2e_high_default_events_per_s"] = out["high"]["default"]["events_per_s"]
    out["server"] = {k: v for k, v in vars(replace(ServerConfig())).items()}
    return out
