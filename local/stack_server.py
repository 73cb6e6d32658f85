"""``saga-outbox local up``: the local runtime as a long-running stack others can talk to.

A moto server endpoint (same in-process backends as the runtime, so boto3 and the AWS CLI with
``--endpoint-url`` see the same queues and executions), the embedded PostgreSQL, the relay and
the dispatcher loop, and the execution inspector page. Ctrl-C (or SIGTERM) stops everything.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

from outbox_relay.embedded import sqlalchemy_url
from saga_outbox._app import SagaApp

from .runtime import LocalOptions, LocalRuntime

__all__ = ["run_local_up"]


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
) -> int:
    from moto.server import ThreadedMotoServer

    from saga_outbox.inspector import serve_inspector

    out = out or sys.stdout
    stop = stop or threading.Event()
    runtime = LocalRuntime(app, LocalOptions(database_url=database_url, data_dir=data_dir))
    runtime.start()
    server = ThreadedMotoServer(ip_address=host, port=port)
    server.start()
    endpoint = "http://{}:{}".format(*server.get_host_and_port())
    inspector = serve_inspector(sfn_client=runtime.clients["stepfunctions"], host=host, port=inspector_port)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        assert runtime.database_url is not None
        db = sqlalchemy_url(runtime.database_url, driver=None)  # the libpq form psql takes
        queue = runtime.queue_url.replace("https://sqs.us-east-1.amazonaws.com", endpoint)
        first = runtime.app.workflows[0]
        routed = next((r.event_type for r in runtime.app.routes), "YourEvent")
        print(
            "\n".join(
                [
                    "saga-outbox local stack is up (Ctrl-C stops it)",
                    f"  AWS endpoint     {endpoint}   (region {runtime.options.region}, any credentials)",
                    f"  PostgreSQL       {db}",
                    f"  queue            {queue}",
                    *(f"  state machine    {arn}" for arn in runtime.state_machine_arns.values()),
                    f"  inspector        {inspector.url}/",
                    "",
                    "Try:",
                    f"  saga-outbox outbox enqueue --database-url '{db}' --event-type {routed} "
                    "--payload '{}'",
                    f"  saga-outbox executions list --endpoint-url {endpoint}",
                    f"  aws --endpoint-url {endpoint} stepfunctions list-executions"
                    f" --state-machine-arn {runtime.state_machine_arns[first.name]}",
                ]
            ),
            file=out,
            flush=True,
        )
        if ready is not None:
            ready.set()
        stop.wait()
        print("stopping: finishing in-flight work ...", file=out, flush=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        inspector.stop()
        runtime.stop()
        server.stop()
    return 0
