"""``saga-outbox chaos --app M:A [--scenario M:S]``: registered through the
``saga_outbox.commands`` entry point group."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from typing import Any

from saga_outbox._console import Console, capture
from saga_outbox._discovery import add_app_argument, app_from_args

__all__ = ["format_table", "print_report", "register"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "chaos",
        help="run relays, dispatcher and sagas under injected faults and check the invariants",
        description="Kill and stall relay processes, drop database connections, lock the outbox "
        "against short lock/statement timeouts, hold a write transaction in another database, cut "
        "SQS off (connection refused, expired credentials), fail SQS entries and Lambda steps (also "
        "after their commit, on every retry), redeliver and re-send; then check: nothing lost, no "
        "duplicate side effect, no effect left behind, no dead outbox row, order per aggregate, "
        "every saga finished. Exits 1 when an invariant is broken. The checks "
        "that need the app's tables (duplicate side effects, effects left behind) run when "
        "--scenario supplies them, and are listed as skipped otherwise.",
    )
    add_app_argument(p)
    p.add_argument(
        "--scenario",
        metavar="MODULE:ATTR",
        help="the app's ChaosScenario factory (app, *, run_id), e.g. myshop.chaos:scenario: "
        "how to start one saga and how to audit the app's own tables",
    )
    p.add_argument("--events", type=int, default=100_000, help="plain events through the outbox")
    p.add_argument("--sagas", type=int, default=1_000, help="saga-starting events")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--relays", type=int, default=3, help="relay processes")
    p.add_argument("--kills", type=int, default=20, help="relay SIGKILLs at least (half after a send)")
    p.add_argument("--entry-failure-rate", type=float, default=0.05, help="per SendMessageBatch entry")
    p.add_argument("--throttle-rate", type=float, default=0.05, help="per SendMessageBatch call")
    p.add_argument("--step-failure-rate", type=float, default=0.05, help="step fails before running")
    p.add_argument("--step-lost-response-rate", type=float, default=0.03, help="step ran, answer lost")
    p.add_argument("--step-timeout-rate", type=float, default=0.02, help="step ran, States.Timeout")
    p.add_argument("--step-duplicate-rate", type=float, default=0.05, help="step invoked twice")
    p.add_argument("--duplicate-delivery-rate", type=float, default=0.05, help="SQS batches delivered twice")
    p.add_argument("--dispatcher-crash-rate", type=float, default=0.02, help="poller dies mid-batch")
    p.add_argument("--late-resend-rate", type=float, default=0.002, help="events re-sent after 5 min")
    p.add_argument("--db-kill-interval", type=float, default=3.0, help="seconds between connection drops")
    p.add_argument("--step-exhausted-rate", type=float, default=0.02, help="step ran, every retry failed")
    p.add_argument(
        "--step-idempotency-down-rate", type=float, default=0.02, help="step ran, idempotency store down"
    )
    p.add_argument("--sqs-outages", type=int, default=2, help="SQS outages (refused / ExpiredToken)")
    p.add_argument("--sqs-outage-seconds", type=float, default=30.0, help="length of each SQS outage")
    p.add_argument("--stalls", type=int, default=6, help="relays SIGSTOPped past their lease")
    p.add_argument(
        "--lost-dispatches",
        type=int,
        default=0,
        help="saga events whose Standard start the dispatcher loses (the reconciler repairs them)",
    )
    p.add_argument(
        "--table-lock-interval", type=float, default=15.0, help="seconds between outbox locks (0: none)"
    )
    p.add_argument(
        "--foreign-transaction-seconds",
        type=float,
        default=30.0,
        help="write transaction held open in another database (0: none)",
    )
    p.add_argument(
        "--source",
        choices=("postgres", "dynamodb"),
        default="postgres",
        help="outbox of the probe events: PostgreSQL (relay processes) or the DynamoDB outbox "
        "(its stream and the stream consumer, with their own faults)",
    )
    p.add_argument("--timeout", type=float, default=3_600.0, help="give up producing after this")
    p.add_argument("--database-url", help="use this PostgreSQL instead of the embedded one")
    p.add_argument("--log-dir", help="keep the relay processes' logs here")
    p.add_argument(
        "--destination",
        choices=("sns", "eventbridge", "kinesis"),
        help="also route the probe events to this destination, read it back and check it",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_chaos)


def _chaos(args: argparse.Namespace) -> int:
    from .harness import ChaosOptions, run_chaos

    try:
        opts = ChaosOptions(
            events=args.events,
            sagas=args.sagas,
            seed=args.seed,
            relays=args.relays,
            kills=args.kills,
            entry_failure_rate=args.entry_failure_rate,
            throttle_rate=args.throttle_rate,
            step_failure_rate=args.step_failure_rate,
            step_lost_response_rate=args.step_lost_response_rate,
            step_timeout_rate=args.step_timeout_rate,
            step_duplicate_rate=args.step_duplicate_rate,
            duplicate_delivery_rate=args.duplicate_delivery_rate,
            dispatcher_crash_rate=args.dispatcher_crash_rate,
            late_resend_rate=args.late_resend_rate,
            db_kill_interval_seconds=args.db_kill_interval,
            step_exhausted_rate=args.step_exhausted_rate,
            step_idempotency_down_rate=args.step_idempotency_down_rate,
            sqs_outages=args.sqs_outages,
            sqs_outage_seconds=args.sqs_outage_seconds,
            stalls=args.stalls,
            lost_dispatches=args.lost_dispatches,
            table_lock_interval_seconds=args.table_lock_interval,
            foreign_transaction_seconds=args.foreign_transaction_seconds,
            source=args.source,
            timeout_seconds=args.timeout,
            database_url=args.database_url,
            log_dir=args.log_dir,
            destination=args.destination,
        )
    except ValueError as exc:
        print(f"saga-outbox chaos: error: {exc}", file=sys.stderr)
        return 2
    app = app_from_args(args)  # an AppError exits 2 with its message (saga_outbox.cli)
    progress = Console(sys.stderr, json=args.json)
    # SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so run_chaos's cleanup stops the relay
    # processes and the embedded PostgreSQL instead of leaving them running
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        report = run_chaos(opts, app=app, scenario=args.scenario, progress=progress)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print_report(report, Console(sys.stdout))
    return 0 if report.ok else 1


def _terminated(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def _reconciler_rows(figures: dict[str, Any]) -> list[tuple[str, Any]]:
    if not figures:
        return []
    return [
        ("reconciler: lost dispatches repaired", figures["lost_dispatches_repaired"]),
        (
            "reconciler: stuck / CompensationFailed / failed",
            f"{figures['stuck']} / {figures['compensation_failed']} / {figures['failed']}",
        ),
    ]


def _checked(value: Any) -> Any:
    return "skipped (no scenario)" if value is None else value


def format_table(report: Any) -> str:
    """The report as the plain text a pipe or a log file gets."""
    return capture(lambda console: print_report(report, console))


def print_report(report: Any, console: Console) -> None:
    r = report
    rows = [
        ("app (scenario)", f"{r.app} ({r.scenario or 'none: generic checks only'})"),
        ("plain events", r.events),
        (f"sagas ({', '.join(r.sagas_checked) or 'none'})", r.sagas),
        ("outbox rows", r.outbox_rows),
        ("relay SIGKILLs (after send)", f"{r.kills} ({r.kills_after_send})"),
        ("relay restarts", r.relay_restarts),
        ("LOST", r.lost),
        ("DUPLICATE SIDE EFFECTS", _checked(r.duplicate_side_effects)),
        ("EFFECTS LEFT BEHIND", _checked(r.effects_left_behind)),
        ("DEAD ROWS", r.dead_rows),
        ("ORDER VIOLATIONS", r.order_violations),
        ("SAGAS UNFINISHED", r.sagas_unfinished),
        ("COMPENSATION ORDER VIOLATIONS", r.compensation_order_violations),
        (
            "sagas completed / compensated / CompensationFailed",
            f"{r.sagas_completed} / {r.sagas_compensated} / {r.sagas_compensation_failed}",
        ),
        ("late re-sends (delivered again)", f"{r.late_resends} ({r.late_resends_received})"),
        *_reconciler_rows(r.reconciler),
        *((f"absorbed: {k}", v) for k, v in r.absorbed.items()),
        *((f"injected: {k}", v) for k, v in r.faults.items()),
        *(
            (f"destination {r.destination['name']}: {k}", r.destination[k])
            for k in ("rows", "received", "lost", "dead_rows", "duplicates", "order_violations")
            if r.destination is not None
        ),
        ("wall time (s)", r.duration_seconds),
    ]
    verdict = (
        "OK: nothing lost, no duplicate side effect, order kept, every saga finished"
        if r.ok
        else f"INVARIANT BROKEN: lost={r.lost_detail} duplicates={r.duplicate_side_effect_detail} "
        f"left behind={r.effects_left_behind_detail} dead rows={r.dead_rows} examples={r.examples}"
    )
    if r.ok and r.scenario is None:
        verdict = (
            "OK (generic checks): nothing lost, order kept, every saga finished with its "
            "compensations in reverse order"
        )
    console.pairs(rows)
    console.line()
    console.line(verdict, style="bold green" if r.ok else "bold red")
    for k, why in r.checks_skipped.items():
        console.line(f"  skipped: {k}: {why}")
