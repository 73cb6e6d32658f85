"""``saga-outbox executions list|show|history|serve``: a plug-in of the ``saga_outbox.commands`` group."""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO
from urllib.parse import urlsplit

from saga_outbox._console import Console
from saga_outbox._errors import Error
from saga_outbox._tables import format_table as _format_table

from .history import EventRow
from .inspector import EXECUTION_STATUSES, SAGA_OUTCOMES, ExecutionInspector, default_region
from .report import ExecutionReport, format_path

__all__ = ["LOCAL_CREDENTIALS", "format_table", "is_loopback_endpoint", "main", "register"]

_CELL_MAX = 60


def _one_line(value: Any, limit: int = _CELL_MAX) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cells(rows: Sequence[Sequence[Any]]) -> list[list[str]]:
    return [[_one_line(c, 10_000) for c in row] for row in rows]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns separated by two spaces, a dashed rule under the headers."""
    return _format_table(headers, _cells(rows))


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--endpoint-url", default=None, help="Step Functions endpoint (moto server, LocalStack)"
    )
    parser.add_argument(
        "--region", default=None, help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, us-east-1)"
    )


#: what a loopback emulator gets when the environment names no credentials: moto (``saga-outbox
#: local up``) and LocalStack accept any key, and boto3 refuses to sign a request without one.
LOCAL_CREDENTIALS = ("local", "local")  # (access key id, secret access key)
_CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE")


def is_loopback_endpoint(endpoint_url: str | None) -> bool:
    """True for an endpoint on this machine (``localhost``, ``127.0.0.0/8``, ``::1``)."""
    if not endpoint_url:
        return False
    host = (urlsplit(endpoint_url if "://" in endpoint_url else f"//{endpoint_url}").hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _inspector(args: argparse.Namespace) -> ExecutionInspector:
    region = args.region or default_region()
    if not is_loopback_endpoint(args.endpoint_url) or any(os.environ.get(v) for v in _CREDENTIAL_VARIABLES):
        return ExecutionInspector(endpoint_url=args.endpoint_url, region_name=region)
    # A local emulator and a shell that configured nothing: the commands `local up` prints must
    # work as printed, so sign with throw-away keys instead of failing on "Unable to locate
    # credentials". Checked before boto3's chain, which would wait on the EC2 metadata service.
    import boto3

    key, secret = LOCAL_CREDENTIALS
    client = boto3.client(
        "stepfunctions",
        endpoint_url=args.endpoint_url,
        region_name=region,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
    )
    return ExecutionInspector(client, endpoint_url=args.endpoint_url, region_name=region)


def _dump(data: Any, out: TextIO) -> None:
    json.dump(data, out, indent=2, default=str)
    out.write("\n")


def _ts(value: Any) -> str:
    return value.isoformat(sep=" ", timespec="milliseconds") if value is not None else ""


def _cmd_list(args: argparse.Namespace, out: TextIO) -> int:
    items = _inspector(args).list_executions(
        state_machine=args.state_machine, status=args.status, outcome=args.outcome, max_results=args.limit
    )
    if args.json:
        _dump([e.to_dict() for e in items], out)
        return 0
    sm_name = {}
    for e in items:
        sm_name[e.state_machine_arn] = e.state_machine_arn.rsplit(":", 1)[-1]
    rows = [
        (
            e.name,
            sm_name[e.state_machine_arn],
            e.status,
            e.saga_outcome or "",
            _ts(e.start_date),
            _ts(e.stop_date),
            e.arn,
        )
        for e in items
    ]
    headers = ["NAME", "STATE MACHINE", "STATUS", "OUTCOME", "STARTED", "STOPPED", "ARN"]
    Console(out).table(headers, _cells(rows))
    return 0


def _print_report(report: ExecutionReport, out: TextIO) -> None:
    console = Console(out)
    fields = [
        ("Execution", report.execution_arn),
        ("State machine", report.state_machine_arn),
        ("Status", report.status),
        ("Started", _ts(report.start_date)),
        ("Stopped", _ts(report.stop_date)),
    ]
    if report.saga_outcome:
        fields.insert(3, ("Saga outcome", report.saga_outcome))
    if report.failures:  # CompensationFailed: name what failed instead of printing its JSON
        failed = "; ".join(_one_line(f.summary, 200) for f in report.failures)
        fields.append(("Error", f"{report.error}: {failed}"))
    elif report.error or report.cause:
        fields.append(("Error", ": ".join(x for x in (report.error, _one_line(report.cause, 200)) if x)))
    if report.trace_id:
        fields.append(("Trace", report.trace_id))
    if report.console_url:
        fields.append(("Console", report.console_url))
    console.pairs(fields, indent="")
    console.line()
    console.line(f"Path: {format_path(report)}")
    if report.compensations:
        console.line(f"Compensations: {', '.join(report.compensations)}")
    console.line()
    rows = [
        (
            s.name,
            s.type,
            s.outcome.value,
            f"undoes {s.compensates}"
            if s.compensation and s.compensates
            else ("yes" if s.compensation else ""),
            s.compensated_by or "",
            s.last_run.error if s.last_run else "",
        )
        for s in report.states
    ]
    headers = ["STATE", "TYPE", "OUTCOME", "COMPENSATION", "COMPENSATED BY", "ERROR"]
    console.table(headers, _cells(rows))


def _cmd_show(args: argparse.Namespace, out: TextIO) -> int:
    report = _inspector(args).describe_execution(args.execution_arn)
    if args.json:
        data = report.to_dict()
        if not args.full:
            data.pop("events")
            data.pop("graph")
        _dump(data, out)
    else:
        _print_report(report, out)
    return 0


def _history_rows(rows: Sequence[EventRow]) -> list[tuple[Any, ...]]:
    return [
        (
            r.id,
            r.type,
            r.state or "",
            _ts(r.timestamp),
            r.elapsed_ms,
            _one_line(r.input),
            _one_line(r.output),
            _one_line(f"{r.error}: {r.cause}" if r.error else r.cause),
        )
        for r in rows
    ]


def _cmd_history(args: argparse.Namespace, out: TextIO) -> int:
    rows = _inspector(args).history(args.execution_arn)
    if args.json:
        _dump([r.to_dict() for r in rows], out)
        return 0
    headers = ["ID", "TYPE", "STATE", "TIMESTAMP", "ELAPSED MS", "INPUT", "OUTPUT", "ERROR"]
    Console(out).table(headers, _cells(_history_rows(rows)))
    return 0


def _cmd_serve(args: argparse.Namespace, out: TextIO) -> int:
    from .server import serve_inspector

    inspector = _inspector(args)
    server = serve_inspector(sfn_client=inspector.client, host=args.host, port=args.port)
    print(f"Inspector on {server.url} (Ctrl-C to stop)", file=out, flush=True)
    try:
        while not server.wait(1.0):  # timed: Ctrl-C may land on the server's thread (see local up)
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def _stdout(command: Callable[[argparse.Namespace, TextIO], int]) -> Callable[[argparse.Namespace], int]:
    # Errors are not caught here: the saga-outbox entry prints every saga_outbox.Error as one
    # line and exits 2, the same rule for every command.
    return lambda args: command(args, sys.stdout)


def register(subparsers: Any) -> None:
    """Add ``executions`` and its sub-commands to a ``saga-outbox`` sub-parser set."""
    parser = subparsers.add_parser("executions", help="inspect Step Functions executions (moto or AWS)")
    commands = parser.add_subparsers(dest="executions_command", metavar="{list,show,history,serve}")
    commands.required = True

    p_list = commands.add_parser("list", help="list executions, newest first")
    p_list.add_argument("--state-machine", metavar="NAME|ARN", default=None)
    p_list.add_argument("--status", type=str.upper, choices=EXECUTION_STATUSES, default=None)
    p_list.add_argument(
        "--outcome",
        type=str.lower,
        choices=SAGA_OUTCOMES,
        default=None,
        help="only sagas with this outcome (read off the compiled end states)",
    )
    p_list.add_argument("--limit", type=int, default=None, help="at most this many executions")
    p_list.add_argument("--json", action="store_true")
    _common(p_list)
    p_list.set_defaults(func=_stdout(_cmd_list))

    p_show = commands.add_parser("show", help="status, path taken and per-state outcome of one execution")
    p_show.add_argument("execution_arn", metavar="ARN")
    p_show.add_argument("--json", action="store_true")
    p_show.add_argument("--full", action="store_true", help="with --json: include events and graph")
    _common(p_show)
    p_show.set_defaults(func=_stdout(_cmd_show))

    p_hist = commands.add_parser("history", help="the events table of one execution")
    p_hist.add_argument("execution_arn", metavar="ARN")
    p_hist.add_argument("--json", action="store_true")
    _common(p_hist)
    p_hist.set_defaults(func=_stdout(_cmd_history))

    p_serve = commands.add_parser("serve", help="serve the inspector web page")
    p_serve.add_argument("--host", default="127.0.0.1")
    p_serve.add_argument("--port", type=int, default=8765)
    _common(p_serve)
    p_serve.set_defaults(func=_stdout(_cmd_serve))


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry (``python -m saga_outbox.inspector executions ...``)."""
    parser = argparse.ArgumentParser(prog="saga-outbox")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except Error as exc:  # the same one-line rule as the saga-outbox entry
        print(f"saga-outbox: error: {exc}", file=sys.stderr)
        return 2
