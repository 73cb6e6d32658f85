"""``make demo`` (``python -m examples.orders demo``): place orders on the local runtime and show
what happened to them."""

from __future__ import annotations

import io
import random
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

from outbox_relay import outbox_status
from saga_outbox.local import Console, LocalOptions, LocalRuntime, progress_on

from .app import create_app
from .audit import Audit, audit_run
from .commands import place_order

__all__ = ["DemoOptions", "DemoResult", "format_table", "print_table", "run_demo"]


@dataclass(frozen=True, kw_only=True)
class DemoOptions:
    orders: int = 200
    fail_payment: float = 0.1
    fail_shipping: float = 0.05
    fail_refund: float = 0.0
    duplicate_rate: float = 0.05
    seed: int = 7
    timeout_seconds: float = 300.0
    #: orders whose saga has not finished yet, at most (the local stack's backpressure)
    max_in_flight: int = 40
    orders_schema: str = "orders"

    def __post_init__(self) -> None:
        if self.orders < 1:
            raise ValueError(f"--orders must be at least 1, got {self.orders}")
        if self.max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {self.max_in_flight}")
        for name in ("fail_payment", "fail_shipping", "fail_refund", "duplicate_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"--{name.replace('_', '-')} must be between 0 and 1, got {value}")


@dataclass(kw_only=True)
class DemoResult:
    audit: Audit
    seconds: float
    duplicate_deliveries: int
    placed: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.audit.as_dict(),
            "seconds": round(self.seconds, 2),
            "duplicate_deliveries": self.duplicate_deliveries,
            "placed_with_failures": self.placed,
        }


def simulated_failures(
    rng: random.Random, *, fail_payment: float, fail_shipping: float, fail_refund: float
) -> dict[str, bool]:
    """The ``simulate`` flags of one order: payment fails, or shipping fails (and then maybe the
    refund too, which ends the saga in CompensationFailed)."""
    simulate: dict[str, bool] = {}
    roll = rng.random()
    if roll < fail_payment:
        simulate["fail_payment"] = True
    elif roll < fail_payment + fail_shipping:
        simulate["fail_shipping"] = True
        if rng.random() < fail_refund:
            simulate["fail_refund"] = True
    return simulate


def place_orders(
    runtime: LocalRuntime,
    opts: DemoOptions,
    rng: random.Random,
    placed: dict[str, int],
    *,
    first: int,
    count: int,
) -> None:
    """Place orders ``first`` .. ``first + count - 1``, each in its own transaction."""
    assert runtime.engine is not None
    for i in range(first, first + count):
        simulate = simulated_failures(
            rng,
            fail_payment=opts.fail_payment,
            fail_shipping=opts.fail_shipping,
            fail_refund=opts.fail_refund,
        )
        for k in simulate:
            placed[k] += 1
        with runtime.engine.begin() as conn:
            place_order(
                conn,
                customer_id=f"customer-{i % 37}",
                items=[{"sku": f"sku-{rng.randrange(20)}", "qty": rng.randint(1, 3)}],
                amount_cents=rng.randint(500, 50_000),
                simulate=simulate or None,
                outbox_schema=runtime.options.outbox_schema,
                orders_schema=opts.orders_schema,
            )


def _settled(runtime: LocalRuntime) -> tuple[int, int, bool]:
    """(sagas finished, sagas total, everything quiet)."""
    assert runtime.engine is not None
    # counts, not listings: listing every execution on each pass grows quadratically
    sagas = runtime.execution_statuses("OrderSaga")
    total = sum(sagas.values())
    finished = total - sagas["RUNNING"]
    express_running = runtime.execution_statuses("OrderProjection")["RUNNING"] > 0
    if express_running or finished < total:
        return finished, total, False  # not quiet: skip the outbox and queue queries
    pending = outbox_status(runtime.engine, schema=runtime.options.outbox_schema).pending
    return finished, total, pending == 0 and runtime.queue_depth() == 0


def run_demo(
    opts: DemoOptions, *, local: LocalOptions | None = None, progress: TextIO | Console | None = sys.stderr
) -> DemoResult:
    """``progress``: a bar on a terminal, a line every 10 s on a pipe or file, None for nothing."""
    local = local or LocalOptions(duplicate_rate=opts.duplicate_rate, seed=opts.seed)
    started = time.monotonic()
    with (
        LocalRuntime(create_app(schema=opts.orders_schema), local) as runtime,
        progress_on(progress, total=opts.orders, description="sagas", started=started) as bar,
    ):
        rng = random.Random(opts.seed)
        placed = {"fail_payment": 0, "fail_shipping": 0, "fail_refund": 0}
        n_placed = 0
        deadline = started + opts.timeout_seconds
        stable = 0
        while time.monotonic() < deadline:
            finished, total, quiet = _settled(runtime)
            # Backpressure: moto runs every execution on its own thread in this process, and
            # hundreds at once starve each other past their task timeouts.
            room = min(opts.max_in_flight - (n_placed - finished), opts.orders - n_placed)
            if room > 0:
                place_orders(runtime, opts, rng, placed, first=n_placed, count=room)
                n_placed += room
            bar.update(completed=finished, detail=f"placed {n_placed}")
            # quiet twice in a row: the last hook's event may still be on its way
            done = n_placed == opts.orders and finished >= opts.orders and total >= opts.orders
            stable = stable + 1 if (done and quiet) else 0
            if stable >= 2:
                break
            time.sleep(0.1)  # a pass costs two in-process counts (the queries run only at the end)
        bar.close()  # the audit below is the table's, not the bar's
        duplicates = sum(s.stats.duplicate_deliveries for s in runtime.event_sources)
        runtime.stop_workers()
        assert runtime.engine is not None
        audit = audit_run(
            runtime.engine,
            sfn_client=runtime.clients["stepfunctions"],
            state_machine_arns=runtime.state_machine_arns,
            outbox_schema=runtime.options.outbox_schema,
            orders_schema=opts.orders_schema,
        )
    return DemoResult(
        audit=audit,
        seconds=time.monotonic() - started,
        duplicate_deliveries=duplicates,
        placed=placed,
    )


def format_table(result: DemoResult) -> str:
    """The result as the plain text a pipe or a log file gets."""
    out = io.StringIO()
    print_table(result, Console(out, force_terminal=False))
    return out.getvalue().removesuffix("\n")


def print_table(result: DemoResult, console: Console) -> None:
    a = result.audit
    rows = [
        ("orders placed", a.orders),
        ("outbox rows published", f"{a.outbox_published} / {a.outbox_rows}"),
        ("executions started (Standard)", a.standard_executions),
        ("executions started (Express)", a.express_executions),
        ("sagas completed", a.sagas_completed),
        ("sagas compensated", a.sagas_compensated),
        ("sagas CompensationFailed", a.sagas_compensation_failed),
        ("sagas unfinished", a.sagas_unfinished),
        ("duplicate deliveries seen", result.duplicate_deliveries),
        ("duplicate side effects", a.duplicate_side_effects),
        ("events lost", a.events_lost),
        ("outbox lag p50 / max (ms)", f"{a.outbox_lag_ms_p50:.0f} / {a.outbox_lag_ms_max:.0f}"),
        ("wall time (s)", f"{result.seconds:.1f}"),
    ]
    verdict = (
        "OK: no lost event, no duplicate side effect, every saga finished"
        if a.ok
        else (
            f"INVARIANT BROKEN: lost={a.lost_detail} duplicates={a.duplicate_side_effect_detail} "
            f"unfinished={a.sagas_unfinished}"
        )
    )
    console.pairs(rows)
    console.line()
    console.line(verdict, style="bold green" if a.ok else "bold red")
