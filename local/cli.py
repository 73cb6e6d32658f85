"""``saga-outbox local run`` and ``saga-outbox local up``: the user's app on the local stack."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from saga_outbox._discovery import add_app_argument, app_from_args

__all__ = ["register"]


def register(subparsers: Any) -> None:
    local = subparsers.add_parser("local", help="run your app locally (embedded PostgreSQL + moto)")
    lsub = local.add_subparsers(dest="local_command", required=True, metavar="ACTION")

    run = lsub.add_parser(
        "run", help="enqueue one event, run it through relay, SQS, dispatcher and Step Functions, report"
    )
    add_app_argument(run)
    run.add_argument("--event-type", required=True, help="the outbox event type, e.g. RoomRequested")
    run.add_argument("--payload", default="{}", help="the event payload as a JSON object")
    run.add_argument("--aggregate", default=None, help="aggregate key (default: a fresh uuid)")
    run.add_argument("--aggregate-type", default=None, help="aggregate type (default: the app's name)")
    run.add_argument("--timeout", type=float, default=120.0, help="give up after this many seconds")
    run.add_argument("--database-url", help="use this PostgreSQL instead of the embedded one")
    run.add_argument("--json", action="store_true", help="print the result as one JSON object")
    run.set_defaults(func=_local_run)

    up = lsub.add_parser("up", help="start PostgreSQL, a moto endpoint, the relay, dispatcher and inspector")
    add_app_argument(up)
    up.add_argument("--port", type=int, default=5005, help="moto endpoint port (default 5005)")
    up.add_argument("--inspector-port", type=int, default=8008, help="inspector page port (default 8008)")
    up.add_argument("--database-url", help="use this PostgreSQL instead of the embedded one")
    up.add_argument("--data-dir", help="keep the embedded PostgreSQL here (default: a temp dir)")
    up.add_argument(
        "--json",
        action="store_true",
        help="print the endpoints as one JSON line (the other lines go to stderr), then serve",
    )
    up.set_defaults(func=_local_up)


def _local_run(args: argparse.Namespace) -> int:
    from .run import parse_payload, run_event
    from .runtime import LocalOptions

    app = app_from_args(args)
    payload = parse_payload(args.payload)
    report = run_event(
        app,
        event_type=args.event_type,
        payload=payload,
        aggregate_key=args.aggregate,
        aggregate_type=args.aggregate_type,
        options=LocalOptions(database_url=args.database_url),
        timeout_seconds=args.timeout,
    )
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(report.format())
    return 0 if report.ok else 1


def _local_up(args: argparse.Namespace) -> int:
    from .stack_server import run_local_up

    return run_local_up(
        app_from_args(args),
        port=args.port,
        inspector_port=args.inspector_port,
        database_url=args.database_url,
        data_dir=args.data_dir,
        out=sys.stdout,
        verbose=getattr(args, "verbose", 0),  # the top-level -v: request logs of the servers
        json_output=args.json,
    )
