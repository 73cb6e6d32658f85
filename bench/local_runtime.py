"""(8) The local runtime as a developer feels it: ``make demo`` orders per second, the latency of
``saga-outbox local run`` for one event after start-up, and each Lambda handler's import time.

Everything runs in fresh child processes, as a developer or a Lambda cold start would: the demo
is ``python -m examples.orders demo --json`` on its own embedded PostgreSQL (start-up included
in its wall time, as in ``make demo``); ``local run`` starts a :class:`LocalRuntime` for a
two-workflow app (a Standard saga whose action emits an event that an Express workflow
handles) and times several events one after another once it is up; the import figures are
``import saga_outbox.lambdas.handlers.<name>`` against ``import boto3`` + Powertools' Logger,
Metrics and Tracer in the same run (the floor every handler pays), median of several fresh
interpreters each. Scale: 60 orders (``--quick``: 15); the issue's target is 200 orders in 45 s.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from .common import Ctx

REPO = Path(__file__).resolve().parent.parent
HANDLERS = ("dispatcher", "steps", "relay")
BASELINE_IMPORT = "import boto3\nfrom aws_lambda_powertools import Logger, Metrics, Tracer"

#: the app ``local run`` is timed with: no tables, two workflows, one follow-on event
RUN_APP = """
import uuid
from saga_outbox import SagaApp, Step, StepContext, Workflow, WorkflowKind

app = SagaApp("benchrooms")
app.add(Workflow(name="BenchSaga", kind=WorkflowKind.STANDARD, steps=[
    Step(name="Book", action="book", compensation="cancel"),
    Step(name="Charge", action="charge"),
]))
app.add(Workflow(name="BenchLog", kind=WorkflowKind.EXPRESS,
                 steps=[Step(name="Log", action="log", idempotent=True)]))
app.route("BenchRequested", "BenchSaga")
app.route("BenchBooked", "BenchLog")


@app.action("BenchSaga", "book")
def book(ctx: StepContext) -> dict:
    n = str(ctx.payload.get("n"))
    ctx.enqueue("BenchBooked", {"n": n}, aggregate_type="benchroom", aggregate_key=n,
                event_id=uuid.uuid5(uuid.NAMESPACE_URL, ctx.execution))
    return {"booked": True}


@app.action("BenchSaga", "cancel")
def cancel(ctx: StepContext) -> dict:
    return {}


@app.action("BenchSaga", "charge")
def charge(ctx: StepContext) -> dict:
    return {"charged": True}


@app.action("BenchLog", "log")
def log(ctx: StepContext) -> dict:
    return {}
"""

RUN_CHILD = """
import json, sys, time
t0 = time.perf_counter()
from saga_outbox.local import LocalRuntime
from saga_outbox.local.run import run_in
runtime = LocalRuntime("bench_local_app:app").start()
startup = time.perf_counter() - t0
runs = []
try:
    for n in range(int(sys.argv[1])):
        report = run_in(runtime, event_type="BenchRequested", payload={"n": n}, timeout_seconds=60)
        assert report.ok and len(report.executions) == 2, report.format()
        runs.append(report.seconds)
finally:
    runtime.stop()
print(json.dumps({"startup_seconds": startup, "run_seconds": runs}))
"""

IMPORT_CHILD = """
import json, time
t0 = time.perf_counter()
{code}
print(json.dumps(time.perf_counter() - t0))
"""


def _child(args: list[str], *, timeout: float, env: dict[str, str] | None = None) -> str:
    """The child's whole stdout (the demo prints one indented JSON object, the others one line)."""
    out = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=env,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:3])} exited {out.returncode}: {out.stderr.strip()[-2000:]}")
    return out.stdout.strip()


def demo(orders: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    result = json.loads(
        _child(["-m", "examples.orders", "demo", "--orders", str(orders), "--json"], timeout=900)
    )
    wall = time.perf_counter() - t0
    ok = result.get("events_lost") == 0 and result.get("duplicate_side_effects") == 0
    return {
        "orders": orders,
        "demo_seconds": result.get("seconds"),
        "process_seconds": round(wall, 2),
        "orders_per_s": round(orders / result["seconds"], 3) if result.get("seconds") else None,
        "audit_ok": ok and result.get("sagas_unfinished") == 0,
    }


def local_run(events: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "bench_local_app.py").write_text(textwrap.dedent(RUN_APP))
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([tmp, str(REPO), os.environ.get("PYTHONPATH", "")]),
        }
        data = json.loads(_child(["-c", RUN_CHILD, str(events)], timeout=600, env=env).splitlines()[-1])
    runs = data["run_seconds"]
    return {
        "startup_seconds": round(data["startup_seconds"], 2),
        "run_seconds": [round(s, 3) for s in runs],
        "first_run_seconds": round(runs[0], 3),
        "median_run_seconds": round(statistics.median(runs), 3),
    }


def _import_once(code: str) -> float:
    return float(_child(["-c", IMPORT_CHILD.format(code=code)], timeout=120))


def _spread(times: list[float]) -> dict[str, Any]:
    return {
        "median_s": round(statistics.median(times), 3),
        "min_s": round(min(times), 3),
        "max_s": round(max(times), 3),
    }


def imports(repeats: int) -> dict[str, Any]:
    """Rounds of baseline, dispatcher, steps, relay, one fresh interpreter each: on a shared
    machine the load drifts, and interleaving puts the same drift on every figure."""
    codes = {"baseline_boto3_powertools": BASELINE_IMPORT}
    codes.update({name: f"import saga_outbox.lambdas.handlers.{name}" for name in HANDLERS})
    times: dict[str, list[float]] = {key: [] for key in codes}
    for _ in range(repeats):
        for key, code in codes.items():
            times[key].append(_import_once(code))
    out: dict[str, Any] = {key: _spread(values) for key, values in times.items()}
    baseline = out["baseline_boto3_powertools"]["median_s"]
    for name in HANDLERS:
        out[name]["vs_baseline"] = round(out[name]["median_s"] / baseline, 2)
    out["worst_vs_baseline"] = max(out[name]["vs_baseline"] for name in HANDLERS)
    return out


def run(ctx: Ctx) -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "imports": imports(ctx.scale(5, 3)),
        "local_run": local_run(ctx.scale(5, 3)),
        "demo": demo(ctx.scale(60, 15)),
    }
