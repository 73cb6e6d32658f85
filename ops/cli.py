"""``saga-outbox cost --app M:A --events-per-second N [--mix EVENT_TYPE=share ...] [--json]``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from saga_outbox._discovery import add_app_argument, app_from_args
from saga_outbox._tables import format_table

__all__ = ["register"]


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
    print(
        f"{estimate.events_per_second:g} events/s, {estimate.prices.region} list prices of "
        f"{estimate.prices.as_of} (USD per 30-day month)"
    )
    print(format_table(["component", "USD/month"], rows, align="<>"))
    print()
    print(
        format_table(
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
    )
    print(f"not included: {', '.join(estimate.not_included)}")
    return 0
