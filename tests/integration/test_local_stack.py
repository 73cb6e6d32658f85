"""`saga-outbox local up` and the inspector CLI on a local run (the real OrderSaga)."""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from examples.orders import create_app
from examples.orders.commands import place_order
from outbox_relay.cli import main
from saga_outbox.local.runtime import LocalOptions, LocalRuntime

pytestmark = pytest.mark.integration


@pytest.fixture
def local_runtime(database_url, aws_env):
    runtime = LocalRuntime(
        create_app(schema="insp_orders"), LocalOptions(database_url=database_url, outbox_schema="insp_outbox")
    )
    runtime.start()
    try:
        yield runtime
    finally:
        runtime.stop()


def wait_for_saga(runtime: LocalRuntime, count: int, timeout: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sagas = runtime.executions("OrderSaga")
        if len(sagas) >= count and all(e["status"] != "RUNNING" for e in sagas):
            return sagas
        time.sleep(0.2)
    raise AssertionError("saga did not finish")


def test_inspector_shows_the_compensation_path_of_a_local_saga(local_runtime, capsys):
    with local_runtime.engine.begin() as conn:
        place_order(
            conn,
            customer_id="c1",
            items=[{"sku": "s", "qty": 1}],
            amount_cents=100,
            simulate={"fail_shipping": True},
            outbox_schema="insp_outbox",
            orders_schema="insp_orders",
        )
    [saga] = wait_for_saga(local_runtime, 1)
    assert main(["executions", "show", saga["executionArn"], "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    text = json.dumps(report)
    path = report["path"]
    assert (
        path.index("CreateShipment")
        < path.index("CompensateChargePayment")
        < path.index("CompensateReserveInventory")
    )
    outcomes = {s["name"]: s["outcome"] for s in report["states"]}
    assert outcomes["CreateShipment"] == "failed"
    assert outcomes["ChargePayment"] == outcomes["ReserveInventory"] == "compensated"
    assert outcomes["ConfirmOrder"] == "not_reached"
    assert "ShipmentFailed" in text
    assert main(["executions", "history", saga["executionArn"]]) == 0
    history = capsys.readouterr().out
    assert "TaskFailed" in history and "CompensateReserveInventory" in history
    assert main(["executions", "list", "--state-machine", "OrderSaga", "--status", "SUCCEEDED"]) == 0
    assert saga["name"] in capsys.readouterr().out


VENV_BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
# a request line of werkzeug's (moto's server): '127.0.0.1 - - [date] "POST / HTTP/1.1" 200 -'
REQUEST_LINE = re.compile(r'"(GET|POST|HEAD|PUT|DELETE) \S+ HTTP/1\.[01]" \d{3}')


def fresh_shell_env(home: Path) -> dict[str, str]:
    """What a new terminal has: no AWS_* variables, no ~/.aws, no DATABASE_URL."""
    home.mkdir(parents=True, exist_ok=True)
    drop = ("DATABASE_URL", "QUEUE_URL", "SAGA_OUTBOX_INSPECTOR_URL", "SAGA_OUTBOX_APP")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k not in drop}
    env["HOME"] = str(home)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"  # `saga-outbox` is the venv's
    return env


class LocalUp:
    """`saga-outbox local up` in a subprocess, read up to the end of its banner."""

    def __init__(self, env: dict[str, str], *extra: str) -> None:
        # stderr to a file: a pipe nobody reads while the commands run would block the stack
        # once it filled, and what it logged is checked at the end
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "saga-outbox"), "local", "up", "--app", "examples.orders.app:app", *extra],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=env,
            cwd=REPO,
        )
        lines: list[str] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                break
            lines.append(line)
            if lines[-1] == "\n" and any(x.startswith("Try") for x in lines):  # the banner's end
                break
        self.banner = "".join(lines)
        if not self.banner.endswith("\n\n"):
            self.stop()
            raise AssertionError(f"no banner: {self.banner}{self.err[-3000:]}")

    def field(self, label: str) -> str:
        found = re.search(rf"^  {label}\s+(\S+)", self.banner, re.M)
        assert found, (label, self.banner)
        return found.group(1)

    def commands(self) -> list[str]:
        """The lines under "Try ...:", as printed (to be pasted into a shell)."""
        tail = self.banner.split("\nTry", 1)[1].split("\n", 1)[1]
        return [line.strip() for line in tail.splitlines() if line.strip()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.out, _ = self.proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # not left running behind the suite (it holds PostgreSQL)
            self.proc.communicate()
            raise
        self._stderr.seek(0)
        self.err = self._stderr.read()
        self._stderr.close()


def run_printed(line: str, session: dict[str, str]) -> subprocess.CompletedProcess[str] | None:
    """Run one printed line the way a shell would; `export` lines change the session instead."""
    argv = shlex.split(line)
    if argv[0] == "export":
        session.update(dict(a.split("=", 1) for a in argv[1:]))
        return None
    if argv[0] == "aws" and shutil.which("aws", path=session["PATH"]) is None:
        check_aws_line_with_botocore(argv, session)
        return None
    assert argv[0] in ("saga-outbox", "aws"), line
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=session, cwd=REPO)


def check_aws_line_with_botocore(argv: list[str], session: dict[str, str]) -> None:
    # The aws CLI is not installed here: make the same call through botocore, with only the
    # credentials and region the printed export line gave (which is what the CLI would use).
    import botocore.session
    from botocore import xform_name

    at = argv.index("--endpoint-url")
    endpoint, rest = argv[at + 1], argv[1:at] + argv[at + 2 :]
    service, operation, *options = rest
    params = dict(zip(options[::2], options[1::2], strict=True))
    client = botocore.session.Session().create_client(
        service,
        endpoint_url=endpoint,
        region_name=session["AWS_DEFAULT_REGION"],
        aws_access_key_id=session["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=session["AWS_SECRET_ACCESS_KEY"],
    )
    model = client.meta.service_model
    op = model.operation_model(next(n for n in model.operation_names if xform_name(n, "-") == operation))
    members = {"--" + xform_name(m, "-"): m for m in op.input_shape.members}
    getattr(client, xform_name(op.name))(**{members[k]: v for k, v in params.items()})


def wait_for_execution(endpoint: str, name: str, env: dict[str, str], timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = subprocess.run(
            ["saga-outbox", "executions", "list", "--endpoint-url", endpoint, "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert listed.returncode == 0, listed.stderr
        found = [e for e in json.loads(listed.stdout) if e["name"] == name]
        if found and found[0]["status"] != "RUNNING":
            return found[0]
        time.sleep(0.5)
    raise AssertionError(f"execution {name} did not finish")


def test_local_up_prints_commands_that_work_in_a_fresh_shell(tmp_path):
    env = fresh_shell_env(tmp_path / "home")
    stack = LocalUp(env, "--port", "0", "--inspector-port", "0")
    try:
        endpoint, db, inspector = (
            stack.field("AWS endpoint"),
            stack.field("PostgreSQL"),
            stack.field("inspector"),
        )
        data_dir = Path(urllib.parse.unquote(db.split("host=", 1)[1]))
        assert data_dir.is_dir()
        commands = stack.commands()
        assert [c.split()[0] for c in commands] == ["saga-outbox", "saga-outbox", "export", "aws"]
        session = dict(env)  # one shell: the export line holds for the lines after it
        for line in commands:
            done = run_printed(line, session)
            assert done is None or done.returncode == 0, (line, done.stdout, done.stderr)
        assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"} <= set(session)

        # `place` takes $DATABASE_URL and names the execution it will start, with its page.
        placed = subprocess.run(
            [
                sys.executable,
                "-m",
                "examples.orders",
                "place",
                "--fail",
                "payment",
                "--inspector-url",
                inspector,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=dict(env, DATABASE_URL=db),
            cwd=REPO,
        )
        assert placed.returncode == 0, placed.stderr
        printed = dict(line.split(None, 1) for line in placed.stdout.splitlines())
        event_id = printed["event"].split()[0]
        name = printed["execution"].split()[0]
        assert name == f"{event_id}-OrderSaga"
        saga = wait_for_execution(endpoint, name, env)  # without any AWS variable
        assert (saga["status"], saga["saga_outcome"]) == ("SUCCEEDED", "compensated")
        assert printed["inspector"] == f"{inspector}executions/{urllib.parse.quote(saga['arn'], safe='')}"
        page = urllib.request.urlopen(printed["inspector"], timeout=10).read().decode()
        assert "<html" in page.lower()
        api = printed["inspector"].replace("/executions/", "/api/executions/", 1)
        assert json.load(urllib.request.urlopen(api, timeout=10))["execution_arn"] == saga["arn"]
    finally:
        stack.stop()
    assert stack.proc.returncode == 0, stack.err[-3000:]
    # quiet by default: no request line of the moto endpoint (the commands above made many)
    assert not REQUEST_LINE.search(stack.err) and "werkzeug" not in stack.err, stack.err[-3000:]
    assert "Traceback" not in stack.err, stack.err[-3000:]
    assert stack.out.rstrip().splitlines()[-1] == "stopped; removed the embedded PostgreSQL data"
    assert not data_dir.exists()


def test_local_up_names_the_kept_data_dir_when_it_stops(tmp_path):
    stack = LocalUp(
        fresh_shell_env(tmp_path / "home"),
        "--port",
        "0",
        "--inspector-port",
        "0",
        "--data-dir",
        str(tmp_path / "pg"),
    )
    stack.stop()
    assert stack.proc.returncode == 0, stack.err[-3000:]
    last = stack.out.rstrip().splitlines()[-1]
    assert last == f"stopped; the embedded PostgreSQL data is kept in {(tmp_path / 'pg').resolve()}"
    assert (tmp_path / "pg" / "PG_VERSION").is_file()


def test_inspector_page_is_silent_when_a_browser_hangs_up(caplog, capfd):
    """A client that closes before the answer is written (reload, closed tab) is no error: no
    "internal error" log, no traceback of socketserver's on stderr."""
    from saga_outbox.inspector import serve_inspector

    answered = threading.Event()

    class SlowClient:  # answers after the browser is gone, with more than a socket buffer holds
        def list_state_machines(self, **_: Any) -> dict[str, Any]:
            time.sleep(0.3)
            answered.set()
            arn = "arn:aws:states:us-east-1:123456789012:stateMachine:" + "X" * 80
            return {"stateMachines": [{"stateMachineArn": arn, "name": "X", "type": "STANDARD"}] * 5000}

        def get_paginator(self, name: str) -> Any:
            client = self

            class Pages:
                def paginate(self, **kw: Any) -> list[dict[str, Any]]:
                    return [client.list_state_machines(**kw)]

            return Pages()

    server = serve_inspector(sfn_client=SlowClient(), port=0)  # type: ignore[arg-type]
    try:
        with caplog.at_level(logging.INFO, logger="saga_outbox.inspector"):
            for _ in range(3):
                answered.clear()
                sock = socket.create_connection(("127.0.0.1", server.port))
                sock.sendall(b"GET /api/state-machines HTTP/1.1\r\nHost: x\r\n\r\n")
                # close with a reset, as a browser tab going away does
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
                assert answered.wait(10)
            time.sleep(0.5)
    finally:
        server.stop()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert "Traceback" not in capfd.readouterr().err
