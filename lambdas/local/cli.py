"""``saga-outbox demo``, ``saga-outbox local up`` and ``saga-outbox orders place``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    demo = subparsers.add_parser("demo", help="run the order sagas end to end locally (PostgreSQL + moto)")
    demo.add_argument("--orders", type=int, default=200, help="orders to place (default 200)")
    demo.add_argument("--fail-payment", type=float, default=0.1, help="share of orders whose payment fails")
    demo.add_argument("--fail-shipping", type=float, default=0.05, help="share whose shipment fails")
    demo.add_argument(
        "--fail-refund",
        type=float,
        default=0.0,
        help="share of shipping failures whose refund also fails (CompensationFailed)",
    )
    demo.add_argument(
        "--duplicate-rate",
        type=float,
        default=0.05,
        help="share of SQS batches delivered twice (visibility timeout expiry)",
    )
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument(
        "--max-in-flight",
        type=int,
        default=40,
        help="unfinished sagas at most (moto runs each execution on a thread of this process)",
    )
    demo.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds")
    demo.add_argument("--database-url", help="use this PostgreSQL instead of the embedded one")
    demo.add_argument("--json", action="store_true", help="print the result as JSON")
    demo.set_defaults(func=_demo)

    local = subparsers.add_parser("local", help="a long-running local stack")
    lsub = local.add_subparsers(dest="local_command", required=True, metavar="ACTION")
    up = lsub.add_parser("up", help="start PostgreSQL, a moto endpoint, the relay, dispatcher and inspector")
    up.add_argument("--port", type=int, default=5005, help="moto endpoint port (default 5005)")
    up.add_argument("--inspector-port", type=int, default=8008, help="inspector page port (default 8008)")
    up.add_argument("--database-url", help="use this PostgreSQL instead of the embedded one")
    up.add_argument("--data-dir", help="keep the embedded PostgreSQL here (default: a temp dir)")
    up.set_defaults(func=_local_up)

    orders = subparsers.add_parser("orders", help="the reference order domain")
    osub = orders.add_subparsers(dest="orders_command", required=True, metavar="ACTION")
    place = osub.add_parser("place", help="place an order (against `local up` or any DATABASE_URL)")
    place.add_argument("--database-url", required=True)
    place.add_argument("--customer", default="customer-1")
    place.add_argument("--sku", default="sku-1")
    place.add_argument("--qty", type=int, default=1)
    place.add_argument("--amount-cents", type=int, default=1999)
    place.add_argument(
        "--fail",
        choices=["payment", "shipping", "inventory", "refund"],
        action="append",
        help="simulate a failure at this step (repeatable)",
    )
    place.set_defaults(func=_orders_place)


def _demo(args: argparse.Namespace) -> int:
    from .demo import DemoOptions, format_table, run_demo
    from .runtime import LocalOptions

    try:
        opts = DemoOptions(
            orders=args.orders,
            fail_payment=args.fail_payment,
            fail_shipping=args.fail_shipping,
            fail_refund=args.fail_refund,
            duplicate_rate=args.duplicate_rate,
            seed=args.seed,
            timeout_seconds=args.timeout,
        )
    except ValueError as exc:
        print(f"saga-outbox demo: error: {exc}", file=sys.stderr)
        return 2
    local = LocalOptions(database_url=args.database_url, duplicate_rate=opts.duplicate_rate, seed=opts.seed)
    if not args.json:
        print(
            f"placing {opts.orders} orders on embedded PostgreSQL + moto "
            f"(payment failures {opts.fail_payment:.0%}, shipping failures {opts.fail_shipping:.0%}) ...",
            file=sys.stderr,
        )
    result = run_demo(opts, local=local, progress=None if args.json else sys.stderr)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        print(format_table(result))
    return 0 if result.audit.ok else 1


def _local_up(args: argparse.Namespace) -> int:
    from .stack_server import run_local_up

    return run_local_up(
        port=args.port,
        inspector_port=args.inspector_port,
        database_url=args.database_url,
        data_dir=args.data_dir,
    )


def _orders_place(args: argparse.Namespace) -> int:
    import sqlalchemy as sa

    from lambdas.orders.commands import place_order
    from outbox_relay.embedded import sqlalchemy_url

    engine = sa.create_engine(sqlalchemy_url(args.database_url))
    try:
        with engine.begin() as conn:
            order_id = place_order(
                conn,
                customer_id=args.customer,
                items=[{"sku": args.sku, "qty": args.qty}],
                amount_cents=args.amount_cents,
                simulate={f"fail_{f}": True for f in (args.fail or [])} or None,
            )
    finally:
        engine.dispose()
    print(order_id)
    return 0
