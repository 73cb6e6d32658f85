"""``saga-outbox outbox replay``: options, the progress display and the summary."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from typing import Any

from .exceptions import ConfigurationError

__all__ = ["add_replay_parser"]


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from exc
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a time zone (e.g. {text}+00:00 or {text}Z): {text!r}")
    return value


def add_replay_parser(osub: Any, add_db: Callable[[argparse.ArgumentParser], None]) -> None:
    p = osub.add_parser(
        "replay",
        help="re-publish published (live and archived) events to a replay queue or a workflow, resumably",
    )
    add_db(p)
    p.add_argument("--run-id", help="names the run; the same id resumes it after its checkpoint")
    p.add_argument("--since", type=_instant, help="created at or after this ISO time (with zone)")
    p.add_argument("--until", type=_instant, help="created before this ISO time (with zone)")
    p.add_argument("--from-id", type=int, help="outbox row id, inclusive")
    p.add_argument("--to-id", type=int, help="outbox row id, inclusive")
    p.add_argument("--event-type", action="append", default=[], help="only this event type (repeatable)")
    p.add_argument(
        "--aggregate-type", action="append", default=[], help="only this aggregate type (repeatable)"
    )
    to = p.add_mutually_exclusive_group()
    to.add_argument("--queue-url", help="an SQS FIFO replay queue")
    to.add_argument("--state-machine-arn", help="start this workflow directly, one execution per event")
    p.add_argument("--region", help="AWS region (default: from the environment)")
    p.add_argument("--endpoint-url", help="SQS / Step Functions endpoint (a local emulator)")
    p.add_argument("--rate", type=float, help="at most this many events per second")
    p.add_argument("--page-size", type=int, default=500, help="events per transaction (default 500)")
    p.add_argument("--dry-run", action="store_true", help="count what would be replayed, send nothing")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress display")
    p.set_defaults(func=_cmd_replay)


def _cmd_replay(args: argparse.Namespace) -> int:
    import sqlalchemy as sa

    from .cli import _database_url
    from .replay import ReplayOptions, ReplaySelection, count_replay, replay

    selection = ReplaySelection(
        since=args.since,
        until=args.until,
        from_id=args.from_id,
        to_id=args.to_id,
        event_types=tuple(args.event_type),
        aggregate_types=tuple(args.aggregate_type),
    )
    engine = sa.create_engine(_database_url(args), pool_pre_ping=True)
    try:
        if args.dry_run:
            return _dry_run(engine, args, selection, count_replay)
        if not args.run_id:
            raise ConfigurationError("name the run: --run-id ID (the same id resumes it after a crash)")
        options = ReplayOptions(
            run_id=args.run_id, schema=args.schema, page_size=args.page_size, rate=args.rate
        )
        destination = _destination(args)
        with _progress(args) as on_progress:
            result = replay(
                engine, destination=destination, selection=selection, options=options, on_progress=on_progress
            )
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(result.as_dict()))
        return 0
    from saga_outbox._tables import format_pairs

    resumed = f"row {result.resumed_from_id}" if result.resumed_from_id else "no (a new run)"
    print(f"replay run {result.run_id!r} finished" if result.finished else f"replay run {result.run_id!r}")
    print(
        format_pairs(
            [
                ("destination", result.destination),
                ("resumed after", resumed),
                ("delivered now", f"{result.delivered:,}"),
                ("delivered by the run", f"{result.delivered_by_run:,}"),
                ("last row id", result.last_id),
                (
                    "unavailable (purged, no archive)",
                    "n/a" if result.unavailable is None else result.unavailable,
                ),
                ("seconds", f"{result.seconds:.1f}"),
                ("events/s", f"{result.events_per_s:,.0f}"),
            ]
        )
    )
    return 0


def _destination(args: argparse.Namespace) -> Any:
    from .replay import QueueDestination, WorkflowDestination

    if args.queue_url:
        from .publisher import SqsFifoPublisher

        return QueueDestination(
            SqsFifoPublisher(
                queue_url=args.queue_url, region_name=args.region, endpoint_url=args.endpoint_url
            )
        )
    if args.state_machine_arn:
        return WorkflowDestination(
            state_machine_arn=args.state_machine_arn, region_name=args.region, endpoint_url=args.endpoint_url
        )
    raise ConfigurationError(
        "name the destination: --queue-url URL (a replay queue) or --state-machine-arn ARN"
    )


def _dry_run(engine: Any, args: argparse.Namespace, selection: Any, count_replay: Any) -> int:
    after = 0
    if args.run_id:  # count what a resume of this run would still deliver
        from sqlalchemy import exc as sa_exc

        from .db import translate
        from .schema import check_schema

        table = f'"{check_schema(args.schema)}".replay_checkpoints'
        try:
            with engine.connect() as conn:
                row = conn.exec_driver_sql(
                    f"SELECT last_id FROM {table} WHERE run_id = %(r)s",
                    {"r": args.run_id},
                ).first()
        except sa_exc.SQLAlchemyError as exc:
            raise translate(exc, schema=args.schema) from exc
        after = int(row[0]) if row else 0
    counts = count_replay(engine, selection=selection, schema=args.schema, after_id=after)
    if args.json:
        print(json.dumps({"dry_run": True, **counts.as_dict()}))
        return 0
    from saga_outbox._tables import format_table

    print(
        f"dry run: {counts.replayable:,} event(s) would be replayed"
        + (f" after row {after}" if after else "")
    )
    if counts.by_event_type:
        print(format_table(["event type", "events"], sorted(counts.by_event_type.items()), align="<>"))
    print(f"{counts.unavailable:,} selected row(s) were purged without archive: their payloads are gone")
    return 0


def _progress(args: argparse.Namespace) -> AbstractContextManager[Any]:
    if args.no_progress or args.json:
        return nullcontext(None)
    return _Progress(args.run_id)


class _Progress:
    """The package's one progress helper (``saga_outbox._console``): a Rich bar on stderr on a
    terminal, plain lines every 5 s otherwise or with ``NO_COLOR``; stdout keeps the summary."""

    def __init__(self, run_id: str) -> None:
        from saga_outbox._console import progress_on

        self._bar = progress_on(sys.stderr, total=None, description=f"replay {run_id}", every=5.0)

    def __enter__(self) -> Callable[[Any], None]:
        return self._update

    def __exit__(self, *exc: object) -> None:
        self._bar.flush()
        self._bar.close()

    def _update(self, p: Any) -> None:
        self._bar.update(completed=p.delivered, total=p.total, detail=f"delivered, last row {p.last_id}")
