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
    place.add_argument(
        "--inspector-url",
        default=os.environ.get("SAGA_OUTBOX_INSPECTOR_URL"),
        help="the inspector page `saga-outbox local up` printed: also print the saga's page there "
        "(default: $SAGA_OUTBOX_INSPECTOR_URL)",
    )
    args = parser.parse_args(argv)
    try:
        return _demo(args) if args.command == "demo" else _place(args)
    except (Error, ValueError) as exc:  # a command line: one line, exit 2
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2


def _demo(args: argparse.Namespace) -> int:
    from saga_outbox.local import Console, LocalOptions

    from .demo import DemoOptions, print_table, run_demo

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
    result = run_demo(opts, local=local, progress=None if args.json else Console(sys.stderr))
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        print_table(result, Console(sys.stdout))
    return 0 if result.audit.ok else 1


def _place(args: argparse.Namespace) -> int:
    import sqlalchemy as sa

    from outbox_relay import outbox_table
    from outbox_relay.embedded import sqlalchemy_url
    from saga_outbox import WorkflowKind
    from saga_outbox.workflows import execution_name

    from .app import app
    from .commands import AGGREGATE_TYPE, place_order

    if not args.database_url:
        raise ValueError("no database: pass --database-url or set DATABASE_URL")
    engine = sa.create_engine(sqlalchemy_url(args.database_url))
    outbox = outbox_table()
    try:
        with engine.begin() as conn:
            order_id = place_order(
                conn,
                customer_id=args.customer,
                items=[{"sku": args.sku, "qty": args.qty}],
                amount_cents=args.amount_cents,
                simulate={f"fail_{f}": True for f in (args.fail or [])} or None,
            )
            # place_order returns the order id only; its OrderPlaced row is the one outbox row of
            # this new aggregate, and its event id is what the executions are named after.
            event_id = conn.execute(
                sa.select(outbox.c.event_id).where(
                    outbox.c.aggregate_type == AGGREGATE_TYPE,
                    outbox.c.aggregate_key == str(order_id),
                    outbox.c.event_type == "OrderPlaced",
                )
            ).scalar_one()
    finally:
        engine.dispose()
    lines = [("order", str(order_id)), ("event", f"{event_id} (OrderPlaced)")]
    # Standard executions are named by the event (execution_name), so the name is known before
    # the dispatcher starts them; an Express one gets a fresh name per start and is not listed.
    standard = [wf.name for wf in app.workflows_for("OrderPlaced") if wf.kind is WorkflowKind.STANDARD]
    names = {wf: execution_name(wf, event_id) for wf in standard}
    lines += [("execution", f"{name}  ({wf})") for wf, name in names.items()]
    for key, value in lines:
        print(f"{key:<9}  {value}", flush=True)
    # After the order lines: a placed order is reported even when the inspector cannot be asked.
    if args.inspector_url:
        for url in _inspector_pages(args.inspector_url, names):
            print(f"{'inspector':<9}  {url}")
    return 0


def _inspector_pages(inspector_url: str, names: dict[str, str]) -> list[str]:
    """The inspector page of each named execution; its ARN needs the state machine's, which the
    inspector itself lists (no AWS credentials or region needed here)."""
    import urllib.error
    import urllib.request
    from urllib.parse import quote

    base = inspector_url.rstrip("/")
    try:
        with urllib.request.urlopen(f"{base}/api/state-machines", timeout=10) as answer:
            machines = {sm["name"]: sm["arn"] for sm in json.load(answer)}
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ValueError(f"the order is placed, but the inspector at {base} did not answer: {exc}") from exc
    pages = []
    for wf, name in names.items():
        if wf not in machines:
            raise ValueError(f"the order is placed, but the inspector at {base} has no state machine {wf}")
        arn = machines[wf].replace(":stateMachine:", ":execution:", 1) + f":{name}"
        pages.append(f"{base}/executions/{quote(arn, safe='')}")
    return pages


if __name__ == "__main__":
    sys.exit(main())
