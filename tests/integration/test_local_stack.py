"""`saga-outbox local up` and the inspector CLI on a local run (the real OrderSaga)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from typing import Any

import boto3
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


def test_local_up_serves_endpoint_database_and_inspector(tmp_path, aws_env):
    env = dict(os.environ, AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "saga_outbox.cli",
            "local",
            "up",
            "--app",
            "examples.orders.app:app",
            "--port",
            "0",
            "--inspector-port",
            "0",
            "--data-dir",
            str(tmp_path / "pg"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                break
            lines.append(line)
            if line.startswith("Try:"):
                break
        banner = "".join(lines)
        endpoint = re.search(r"AWS endpoint\s+(\S+)", banner).group(1)  # type: ignore[union-attr]
        db = re.search(r"PostgreSQL\s+(\S+)", banner).group(1)  # type: ignore[union-attr]
        inspector = re.search(r"inspector\s+(\S+)", banner).group(1)  # type: ignore[union-attr]
        placed = subprocess.run(
            [
                sys.executable,
                "-m",
                "examples.orders",
                "place",
                "--database-url",
                db,
                "--fail",
                "payment",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert placed.returncode == 0, placed.stderr
        sfn = boto3.client("stepfunctions", endpoint_url=endpoint, region_name="us-east-1")
        arn = next(
            m["stateMachineArn"]
            for m in sfn.list_state_machines()["stateMachines"]
            if m["name"] == "OrderSaga"
        )
        deadline = time.monotonic() + 60
        status = "RUNNING"
        while time.monotonic() < deadline:
            executions = sfn.list_executions(stateMachineArn=arn)["executions"]
            if executions and executions[0]["status"] != "RUNNING":
                status = executions[0]["status"]
                break
            time.sleep(0.3)
        assert status == "SUCCEEDED"  # a declined payment is compensated: the saga ends cleanly
        import urllib.request

        page = urllib.request.urlopen(inspector, timeout=10).read().decode()
        assert "OrderSaga" in page or "state-machines" in page
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert "stopping" in out
