"""``python -m examples.orders demo|place``: the orders example's own commands (``make demo``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from saga_outbox import Error


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.orders", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="run the order sagas end to end locally (PostgreSQL + moto)")
    demo.add_argument("--orders", type=int, default=200, help="orders to place (default 200)")
    demo.add_argument("--fail-payment", type=float, default=0.1, help="share of orders whose payment fails")
    demo.add_argument("--fail-shipping", type=float, default=0.05, help="share whose shipment fails")
    demo.add_argument(
        "--fail-refund", type=float, default=0.0, help="share of shipping failures whose refund fails too"
    )
    demo.add_argument(
        "--duplicate-rate", type=float, default=0.05, help="share of SQS batches delivered twice"
    )
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--max-in-flight", type=int, default=40, help="unfinished sagas at most")
    demo.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds")
    demo.add_argument("--database-url", help="use this PostgreSQL instead of the embedded one")
    demo.add_argument("--json", action="store_true", help="print the result as JSON")

    place = sub.add_parser("place", help="place an order (against `saga-outbox local up` or any database)")
    place.add_argument(
        "--database-url", default=os.environ.get("DATABASE_URL"), help="default: $DATABASE_URL"
    )
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
    args = parser.parse_args(argv)
    try:
        return _demo(args) if args.command == "demo" else _place(args)
    except (Error, ValueError) as exc:  # a command line: one line, exit 2
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2


def _demo(args: argparse.Namespace) -> int:
    from saga_outbox.local import LocalOptions

    from .demo import DemoOptions, format_table, run_demo

    opts = DemoOptions(
        orders=args.orders,
        fail_payment=args.fail_payment,
        fail_shipping=args.fail_shipping,
        fail_refund=args.fail_refund,
        duplicate_rate=args.duplicate_rate,
        seed=args.seed,
        timeout_seconds=args.timeout,
        max_in_flight=args.max_in_flight,
    )
    local = LocalOptions(database_url=args.database_url, duplicate_rate=opts.duplicate_rate, seed=opts.seed)
    if not args.json:
        print(
            f"placing {opts.orders} orders on embedded PostgreSQL + moto "
            f"(payment failures {opts.fail_payment:.0%}, shipping failures {opts.fail_shipping:.0%}) ...",
            file=sys.stderr,
        )
    result = run_demo(opts, local=local, progress=None if args.json else sys.stderr)
    print(json.dumps(result.as_dict(), indent=2) if args.json else format_table(result))
    return 0 if result.audit.ok else 1


def _place(args: argparse.Namespace) -> int:
    import sqlalchemy as sa

    from outbox_relay.embedded import sqlalchemy_url

    from .commands import place_order

    if not args.database_url:
        raise ValueError("no database: pass --database-url or set DATABASE_URL")
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


if __name__ == "__main__":
    sys.exit(main())
