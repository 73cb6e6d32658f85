"""``saga-outbox cost --app M:A --events-per-second N [--mix EVENT_TYPE=share ...] [--json]`` and
``saga-outbox reconcile --app M:A --database-url URL [...]`` (see docs/operations.md)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from saga_outbox._console import Console, capture
from saga_outbox._discovery import add_app_argument, app_from_args

__all__ = ["register", "register_reconcile"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("cost", help="estimate the monthly AWS bill of your app at a given event rate")
    add_app_argument(p)
    p.add_argument("--events-per-second", type=float, required=True, help="outbox events per second")
    p.add_argument(
        "--mix",
        action="append",
        default=[],
        metavar="EVENT_TYPE=SHARE",
        help="share of the events of one type (repeatable; default: equal shares of the routed types)",
    )
    p.add_argument("--step-ms", type=float, default=None, help="steps Lambda duration per task (default 60)")
    p.add_argument("--message-kb", type=float, default=None, help="average message size (default 1)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cost)


def _parse_mix(items: list[str]) -> dict[str, float]:
    from .cost import CostInputError

    mix: dict[str, float] = {}
    for item in items:
        event_type, sep, share = item.partition("=")
        try:
            if not sep or not event_type:
                raise ValueError
            mix[event_type] = float(share)
        except ValueError:
            raise CostInputError(
                f"--mix takes EVENT_TYPE=SHARE (e.g. RoomRequested=0.5), got {item!r}"
            ) from None
    return mix


def _cost(args: argparse.Namespace) -> int:
    from .cost import CostAssumptions, estimate_cost

    overrides = {
        k: v for k, v in (("step_ms", args.step_ms), ("message_kb", args.message_kb)) if v is not None
    }
    estimate = estimate_cost(
        app_from_args(args),
        events_per_second=args.events_per_second,
        mix=_parse_mix(args.mix),
        assumptions=CostAssumptions(**overrides),
    )
    if args.json:
        print(json.dumps(estimate.as_dict(), indent=2))
        return 0
    rows = [(k, f"{v:,.2f}") for k, v in estimate.components.items()]
    rows.append(("total", f"{estimate.total:,.2f}"))
    console = Console()
    console.line(
        f"{estimate.events_per_second:g} events/s, {estimate.prices.region} list prices of "
        f"{estimate.prices.as_of} (USD per 30-day month)"
    )
    console.table(["component", "USD/month"], rows, align="<>")
    console.line()
    console.table(
        ["workflow", "kind", "executions/month", "transitions", "tasks", "USD/month"],
        [
            (
                w.workflow,
                w.kind,
                f"{w.executions_per_month:,.0f}",
                w.transitions_per_execution,
                w.tasks_per_execution,
                f"{w.usd_per_month:,.2f}",
            )
            for w in estimate.workflows
        ],
        align="<<>>>>",
    )
    console.line(f"not included: {', '.join(estimate.not_included)}")
    return 0


def register_reconcile(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "reconcile",
        help="start lost Standard dispatches; list stuck, CompensationFailed and failed executions",
    )
    add_app_argument(p)
    p.add_argument("--database-url", required=True, help="the app's PostgreSQL (the outbox's database)")
    p.add_argument("--schema", default=None, help="outbox schema (default saga_outbox)")
    p.add_argument(
        "--older-than-minutes",
        type=float,
        default=15.0,
        help="only events published at least this long ago (default 15: past SQS retries)",
    )
    p.add_argument("--since-hours", type=float, default=24.0, help="how far back to look (default 24)")
    p.add_argument(
        "--deadline-margin-seconds",
        type=float,
        default=300.0,
        help="added to a workflow's worst-case duration before a RUNNING execution counts as stuck",
    )
    p.add_argument("--endpoint-url", default=None, help="Step Functions endpoint (moto server, LocalStack)")
    p.add_argument(
        "--region", default=None, help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, us-east-1)"
    )
    p.add_argument(
        "--state-machine-arns",
        default=None,
        metavar="JSON",
        help='{"<workflow>": "<ARN>"} (the dispatcher\'s STATE_MACHINE_ARNS); default: resolve by name '
        "(<workflow> or <stack>-<workflow>)",
    )
    p.add_argument("--dry-run", action="store_true", help="report what would be started, start nothing")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_reconcile)


def _sfn_client(endpoint_url: str | None, region: str | None) -> Any:
    import os

    import boto3

    from saga_outbox.inspector.cli import LOCAL_CREDENTIALS, is_loopback_endpoint
    from saga_outbox.inspector.inspector import default_region

    kwargs: dict[str, Any] = {"endpoint_url": endpoint_url, "region_name": region or default_region()}
    configured = any(os.environ.get(v) for v in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE"))
    if is_loopback_endpoint(endpoint_url) and not configured:
        # a local emulator accepts any key, as `executions` does
        kwargs["aws_access_key_id"], kwargs["aws_secret_access_key"] = LOCAL_CREDENTIALS
    return boto3.client("stepfunctions", **kwargs)


def _reconcile(args: argparse.Namespace) -> int:
    from outbox_relay.db import connect_engine
    from outbox_relay.schema import DEFAULT_SCHEMA

    from ._reconcile_arns import parse_state_machine_arns, resolve_state_machine_arns
    from .reconcile import Reconciler

    app = app_from_args(args)
    workflows = [w.name for w in app.workflows]
    routed = sorted({r.workflow for r in app.routes})
    # parse the JSON before anything connects: a typo fails in a millisecond, naming itself
    arns = (
        parse_state_machine_arns(args.state_machine_arns, workflows, required=routed)
        if args.state_machine_arns is not None
        else None
    )
    sfn = _sfn_client(args.endpoint_url, args.region)
    if arns is None:
        arns = resolve_state_machine_arns(sfn, routed)
    engine, owned = connect_engine(args.database_url)
    try:
        report = Reconciler(
            app,
            engine=engine,
            sfn_client=sfn,
            state_machine_arns=arns,
            schema=args.schema or DEFAULT_SCHEMA,
            older_than_minutes=args.older_than_minutes,
            since_hours=args.since_hours,
            deadline_margin_seconds=args.deadline_margin_seconds,
            dry_run=args.dry_run,
        ).run()
    finally:
        if owned:
            engine.dispose()
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print_reconcile(report, Console())
    return 0


def render_reconcile(report: Any) -> str:
    """The text form of a :class:`~saga_outbox.ops._reconcile_findings.ReconcileReport`."""
    return capture(lambda console: print_reconcile(report, console))


def print_reconcile(report: Any, console: Console) -> None:
    """A :class:`~saga_outbox.ops._reconcile_findings.ReconcileReport` on ``console``."""
    c = report.counts
    lines = [
        f"reconcile{' (dry run)' if report.dry_run else ''}: events published "
        f"{report.since:%Y-%m-%d %H:%M:%S} .. {report.until:%Y-%m-%d %H:%M:%S} UTC, "
        f"{report.events_checked} checked",
        f"  lost dispatches {c['lost_dispatches']} (started {c['started']}, failed {c['start_failures']}), "
        f"stuck {c['stuck']}, CompensationFailed {c['compensation_failed']}, failed {c['failed']}",
    ]
    sections: list[tuple[str, list[str], list[tuple[Any, ...]]]] = [
        (
            "Lost dispatches",
            ["WORKFLOW", "EVENT", "PUBLISHED", "ACTION", "EXECUTION"],
            [
                (d.workflow, d.event_id, f"{d.published_at:%H:%M:%S}", d.action, d.error or d.execution_name)
                for d in report.lost_dispatches
            ],
        ),
        (
            "Stuck (RUNNING past the deadline)",
            ["WORKFLOW", "EXECUTION", "RUNNING", "DEADLINE", "WAITING IN"],
            [
                (
                    s.workflow,
                    s.execution_name,
                    f"{s.running_seconds:,.0f} s",
                    f"{s.deadline_seconds:,.0f} s",
                    s.current_state or "",
                )
                for s in report.stuck
            ],
        ),
        (
            "CompensationFailed",
            ["WORKFLOW", "EXECUTION", "FAILED", "UNDONE", "NOT UNDONE"],
            [
                (
                    s.workflow,
                    s.execution_name,
                    "; ".join(f"{x['state']}: {x['error']}" for x in s.failed),
                    ", ".join(s.undone) or "-",
                    "; ".join(f"{x['step']} ({x['reason']})" for x in s.not_undone) or "-",
                )
                for s in report.compensation_failed
            ],
        ),
        (
            "Failed",
            ["WORKFLOW", "KIND", "EXECUTION", "STATUS", "ERROR"],
            [(x.workflow, x.kind, x.execution_name, x.status, x.error or "") for x in report.failed],
        ),
    ]
    for line in lines:
        console.line(line)
    for title, headers, rows in sections:
        if rows:
            console.line()
            console.table(headers, rows, indent="  ", title=title)
    for s in report.skipped:
        console.line()
        console.line(f"skipped: {s.workflow} {s.check}: {s.reason}")
