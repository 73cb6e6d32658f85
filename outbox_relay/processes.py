"""``saga-outbox relay --processes N``: N relay processes, one GIL each.

One relay is bound by one core (botocore's CPU per SendMessageBatch runs under its GIL);
competing relays are safe by design (SKIP LOCKED claims, leases, fenced marks), so more cores
are used by more processes. The parent only starts the children, forwards SIGTERM/SIGINT (each
child finishes its in-flight batches and marks them) and, for ``--drain``, sums their results.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["run_relay_processes"]


def child_argv(relay_args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "outbox_relay.cli", "relay", *relay_args, "--processes", "1"]


def run_relay_processes(n: int, relay_args: Sequence[str], *, database_url: str, drain: bool) -> int:
    """Run ``n`` copies of ``saga-outbox relay <relay_args>``; return the worst exit code.
    The database URL travels in the environment, not on a command line others can read."""
    env = {**os.environ, "DATABASE_URL": database_url}
    out = subprocess.PIPE if drain else None
    children = [subprocess.Popen(child_argv(relay_args), env=env, stdout=out, text=True) for _ in range(n)]

    def forward(signum: int, _frame: Any) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        outputs = [child.communicate()[0] for child in children]
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if drain:
        totals: dict[str, float] = {}
        for text in outputs:
            lines = (text or "").strip().splitlines()
            if not lines:
                continue
            for key, value in json.loads(lines[-1]).items():
                # remaining is the same table seen by each: the smallest is the latest view
                if key == "remaining":
                    totals[key] = min(totals.get(key, value), value)
                elif key == "seconds":
                    totals[key] = max(totals.get(key, 0.0), value)
                else:
                    totals[key] = totals.get(key, 0) + value
        totals["processes"] = n
        print(json.dumps(totals))
    return max(child.returncode or 0 for child in children)
