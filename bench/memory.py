"""(6) Relay memory: RSS of a relay process after 100K and after 1M published events.

The parent seeds the backlog by COPY; a child process (``python -m bench.memory``) runs
``Relay.run_forever`` with :class:`outbox_relay.NullPublisher` in a thread and reads its own
``VmRSS`` from ``/proc/self/status`` when the relay's ``Published`` counter crosses each
checkpoint. Growth = RSS(1M) / RSS(100K); a leak (per-row state kept, unbounded caches,
metrics kept in memory) shows as growth.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from typing import Any

import sqlalchemy as sa

from outbox_relay import NullPublisher, Relay, RelayOptions

from .common import Ctx, Timer, fresh_schema, rss_bytes, seed

CLAIM_SIZE = 1000  # the relay's best NullPublisher setting: keeps the 1M run short


class _Counter:
    """A MetricsSink that keeps only the published count (nothing that grows)."""

    def __init__(self) -> None:
        self.published = 0

    def count(self, name: str, value: float = 1) -> None:
        if name == "Published":
            self.published += int(value)

    def gauge(self, name: str, value: float) -> None:
        return None

    def timing(self, name: str, milliseconds: float) -> None:
        return None


def child(dsn_url: str, schema: str, checkpoints: list[int]) -> dict[str, Any]:
    engine = sa.create_engine(dsn_url)
    counter = _Counter()
    relay = Relay(
        engine=engine,
        publisher=NullPublisher(),
        metrics=counter,
        options=RelayOptions(schema=schema, listen=False, claim_size=CLAIM_SIZE),
    )
    stop = threading.Event()
    relay.check()
    thread = threading.Thread(target=relay.run_forever, args=(stop,), daemon=True)
    start = time.perf_counter()
    thread.start()
    samples: list[dict[str, Any]] = []
    for target in checkpoints:
        while counter.published < target and thread.is_alive():
            time.sleep(0.01)
        samples.append(
            {
                "published": counter.published,
                "rss_bytes": rss_bytes(),
                "seconds": round(time.perf_counter() - start, 2),
            }
        )
    stop.set()
    relay.wake()
    thread.join(30)
    relay.close()
    engine.dispose()
    return {"samples": samples}


def run(ctx: Ctx) -> dict[str, Any]:
    small, large = (100_000, 1_000_000) if not ctx.quick else (10_000, 50_000)
    url = ctx.engine.url.render_as_string(hide_password=False)
    with fresh_schema(ctx, "mem") as schema:
        with Timer() as t_seed:
            seed(ctx, schema, large)
        ctx.log(f"  memory: seeded {large:,} rows by COPY in {t_seed.seconds:.1f}s")
        proc = subprocess.run(
            [sys.executable, "-m", "bench.memory", url, schema, str(small), str(large)],
            check=True,
            capture_output=True,
            text=True,
        )
    samples = json.loads(proc.stdout.strip().splitlines()[-1])["samples"]
    a, b = samples
    row = {
        "checkpoints": [small, large],
        "samples": samples,
        "claim_size": CLAIM_SIZE,
        "rss_small_bytes": a["rss_bytes"],
        "rss_large_bytes": b["rss_bytes"],
        "rss_growth_ratio": round(b["rss_bytes"] / a["rss_bytes"], 3),
        "relay_rows_per_s": round((b["published"] - a["published"]) / (b["seconds"] - a["seconds"]), 1),
        "seed_seconds": round(t_seed.seconds, 1),
        "seed_rows_per_s": round(large / t_seed.seconds, 1),
    }
    ctx.log(
        f"  memory: RSS {a['rss_bytes'] / 2**20:.1f} MiB @ {a['published']:,} → "
        f"{b['rss_bytes'] / 2**20:.1f} MiB @ {b['published']:,} (x{row['rss_growth_ratio']})"
    )
    return row


if __name__ == "__main__":
    print(json.dumps(child(sys.argv[1], sys.argv[2], [int(x) for x in sys.argv[3:]])))
