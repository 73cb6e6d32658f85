"""The inspector on real runs of the orders example (local runtime: embedded PostgreSQL, moto's
ASL interpreter, the example's actions): the saga outcome of a completed saga, a first-step
rejection, a full compensation and a failed compensation; `executions list|show|history`; and
docs/inspector.md shows only what these runs print."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from examples.orders.app import create_app
from examples.orders.commands import place_order
from saga_outbox.inspector import ExecutionInspector, ExecutionNotFound, Outcome, StateMachineNotFound
from saga_outbox.inspector.cli import main
from saga_outbox.local.runtime import LocalOptions, LocalRuntime

pytestmark = pytest.mark.integration

DOCS = Path(__file__).resolve().parents[2] / "docs" / "inspector.md"
RUNS = {  # run name -> the example's simulated failures
    "completed": {},
    "first-step-rejected": {"fail_inventory": True},
    "compensated": {"fail_shipping": True},
    "compensation-failed": {"fail_shipping": True, "fail_refund": True},
}


@contextmanager
def run_orders(
    database_url: str, runs: Mapping[str, Mapping[str, bool]], *, outbox: str, orders: str
) -> Iterator[tuple[Any, dict[str, str]]]:
    """Place one order per entry of ``runs`` (name -> simulated failures) on a local runtime and
    wait for their sagas; yields the in-process Step Functions client and name -> execution ARN.
    (The browser tests use it too.)"""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.delenv("AWS_PROFILE", raising=False)
        runtime = LocalRuntime(
            create_app(schema=orders), LocalOptions(database_url=database_url, outbox_schema=outbox)
        )
        runtime.start()
        try:
            names = {}
            for name, flags in runs.items():
                with runtime.engine.begin() as conn:  # type: ignore[union-attr]
                    order = place_order(
                        conn,
                        customer_id="c",
                        items=[{"sku": "s", "qty": 1}],
                        amount_cents=5,
                        simulate=flags,
                        outbox_schema=outbox,
                        orders_schema=orders,
                    )
                names[str(order)] = name
            deadline = time.monotonic() + 120
            while True:
                found = runtime.executions("OrderSaga")
                if len(found) == len(runs) and all(e["status"] != "RUNNING" for e in found):
                    break
                assert time.monotonic() < deadline, f"sagas did not finish: {found}"
                time.sleep(0.2)
            sfn = runtime.clients["stepfunctions"]
            arns = {}
            for execution in found:
                envelope = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
                arns[names[envelope["payload"]["order_id"]]] = execution["executionArn"]
            yield sfn, arns
        finally:
            runtime.stop()


@pytest.fixture(scope="module")
def runs(database_url: str) -> Iterator[dict[str, str]]:
    """One execution per entry of RUNS: name -> execution ARN."""
    with run_orders(database_url, RUNS, outbox="inspect_outbox", orders="inspect_orders") as (_, arns):
        yield arns


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["executions", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_saga_outcomes_come_from_the_compiled_end_states(runs: dict[str, str]) -> None:
    inspector = ExecutionInspector()
    done = inspector.describe_execution(runs["completed"])
    assert (done.status, done.saga_outcome) == ("SUCCEEDED", "completed")
    assert done.path[-2:] == ("MarkCompleted", "SagaCompleted") and done.compensations == ()

    rejected = inspector.describe_execution(runs["first-step-rejected"])
    assert rejected.path == (
        *("Start", "ReserveInventory", "ReserveInventoryFailed"),
        *("CancelOrder", "MarkCompensated", "SagaCompensated"),
    )
    assert rejected.state("ReserveInventoryFailed").branch == "rejected"  # nothing of it to undo
    assert (rejected.status, rejected.saga_outcome) == ("SUCCEEDED", "compensated")
    assert rejected.state("ReserveInventory").outcome is Outcome.FAILED

    undone = inspector.describe_execution(runs["compensated"])
    assert undone.saga_outcome == "compensated"
    assert undone.compensations == ("CompensateChargePayment", "CompensateReserveInventory")
    assert undone.state("ChargePayment").compensated_by == "CompensateChargePayment"
    assert undone.state("ReserveInventory").outcome is Outcome.COMPENSATED
    assert undone.state("CreateShipment").outcome is Outcome.FAILED

    broken = inspector.describe_execution(runs["compensation-failed"])
    assert (broken.status, broken.saga_outcome) == ("FAILED", "compensation_failed")
    assert broken.error == "CompensationFailed"
    assert broken.state("ChargePayment").outcome is Outcome.SUCCEEDED  # its undo failed
    assert broken.state("CompensateChargePayment").outcome is Outcome.FAILED
    assert broken.state("CompensateReserveInventory").outcome is Outcome.NOT_REACHED
    (failure,) = broken.failures  # read off CompensationFailed's JSON cause
    assert (failure.state, failure.error) == ("CompensateChargePayment", "Rejected.RefundFailed")
    assert failure.cause is not None and failure.cause.endswith(": refund failed (simulated)")


def test_list_shows_and_filters_by_outcome(runs: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "list", "--state-machine", "OrderSaga", "--json")
    assert code == 0
    outcome = {e["arn"]: e["saga_outcome"] for e in json.loads(out)}
    assert {name: outcome[arn] for name, arn in runs.items()} == {
        "completed": "completed",
        "first-step-rejected": "compensated",
        "compensated": "compensated",
        "compensation-failed": "compensation_failed",
    }
    code, out, _ = _run(capsys, "list", "--outcome", "compensated", "--json")
    assert sorted(e["arn"] for e in json.loads(out)) == sorted(
        [runs["first-step-rejected"], runs["compensated"]]
    )
    code, out, _ = _run(
        capsys, "list", "--status", "succeeded", "--outcome", "completed", "--limit", "5", "--json"
    )
    assert [e["arn"] for e in json.loads(out)] == [runs["completed"]]

    code, out, _ = _run(capsys, "list", "--state-machine", "OrderSaga")
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["NAME", "STATE", "MACHINE", "STATUS", "OUTCOME"]
    column = lines[0].index("OUTCOME")
    rows = {line.split()[0]: line for line in lines[2:]}
    rejected = rows[runs["first-step-rejected"].rsplit(":", 1)[-1]]
    assert rejected[column:].startswith("compensated ")  # aligned under its header
    assert len(lines) == 2 + len(RUNS)


def test_show_prints_status_outcome_and_path(
    runs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "show", runs["compensation-failed"])
    assert code == 0
    assert re.search(r"^Status +FAILED$", out, re.M) and re.search(
        r"^Saga outcome +compensation_failed$", out, re.M
    )
    assert (
        "Path: Start -> ReserveInventory -> ChargePayment -> CreateShipment"
        " -> CreateShipmentFailed (rejected) -> CompensateChargePayment -> CompensationFailed"
    ) in out
    # the failed state, its error and message, not the cause's JSON
    error = re.search(r"^Error +(.*)$", out, re.M)
    assert error and re.fullmatch(
        r"CompensationFailed: CompensateChargePayment failed with Rejected\.RefundFailed: order \S+: refund"
        r" failed \(simulated\)",
        error.group(1),
    ), error
    header = next(line for line in out.splitlines() if line.startswith("STATE"))
    row = next(line for line in out.splitlines() if line.startswith("CompensateChargePayment "))
    assert row.index("failed") == header.index("OUTCOME")
    assert "undoes ChargePayment" in row

    code, out, _ = _run(capsys, "show", runs["compensation-failed"], "--json")
    (failure,) = json.loads(out)["failures"]
    assert (failure["state"], failure["error"]) == ("CompensateChargePayment", "Rejected.RefundFailed")
    assert failure["summary"] == error.group(1).removeprefix("CompensationFailed: ")

    code, out, _ = _run(capsys, "show", runs["first-step-rejected"], "--json")
    report = json.loads(out)
    assert (report["status"], report["saga_outcome"]) == ("SUCCEEDED", "compensated")
    assert report["failures"] == []
    choice = next(s for s in report["states"] if s["name"] == "ReserveInventoryFailed")
    assert (choice["helper_of"], choice["branch"]) == ("ReserveInventory", "rejected")
    assert "events" not in report and "graph" not in report  # only with --full


def test_history_lists_events_with_state_input_and_output(
    runs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "history", runs["compensated"], "--json")
    assert code == 0
    events = json.loads(out)
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "ExecutionStarted" and events[0]["elapsed_ms"] == 0
    assert events[-1]["type"] == "ExecutionSucceeded"
    failed = [e for e in events if e["type"] in ("TaskFailed", "LambdaFunctionFailed")]
    assert failed and {e["state"] for e in failed} == {"CreateShipment"}
    entered = [e["state"] for e in events if e["type"].endswith("StateEntered")]
    assert entered[-2:] == ["MarkCompensated", "SagaCompensated"]

    code, out, _ = _run(capsys, "history", runs["compensated"])
    assert out.splitlines()[0].split()[:3] == ["ID", "TYPE", "STATE"]


def test_errors_are_one_line_and_exit_2(runs: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    missing = runs["compensated"].rsplit(":", 1)[0] + ":nope"
    code, _, err = _run(capsys, "show", missing)
    assert (code, err) == (2, f"saga-outbox: error: execution not found: {missing}\n")
    code, _, err = _run(capsys, "list", "--state-machine", "NoSuchSaga")
    assert (code, err) == (2, "saga-outbox: error: state machine not found: NoSuchSaga\n")
    inspector = ExecutionInspector()
    with pytest.raises(ExecutionNotFound):
        inspector.history(missing)
    with pytest.raises(StateMachineNotFound):
        inspector.list_executions(state_machine="NoSuchSaga")


def _printed(capsys: pytest.CaptureFixture[str], runs: dict[str, str]) -> str:
    out = [_run(capsys, "list", "--state-machine", "OrderSaga")[1]]
    out += [_run(capsys, "list", "--outcome", o)[1] for o in ("compensated", "compensation_failed")]
    out += [_run(capsys, "show", arn)[1] for arn in runs.values()]
    return "\n".join(out)


def test_docs_show_only_what_the_tool_prints(
    runs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    printed = _printed(capsys, runs)
    words = set(printed.split())
    paths = {line for line in printed.splitlines() if line.startswith("Path: ")}
    fields = {
        " ".join(line.split()) for line in printed.splitlines() if line.startswith(("Status", "Saga outcome"))
    }
    blocks = re.findall(r"```console\n(.*?)```", DOCS.read_text(), re.S)
    assert blocks, "docs/inspector.md has no console example"
    shown = "\n".join(blocks)
    for line in shown.splitlines():
        if line.startswith("Path: "):
            assert line in paths, line
        if line.startswith(("Status", "Saga outcome")):
            assert " ".join(line.split()) in fields, line
    # every state or status-like word in the examples (CamelCase names, UPPER statuses,
    # lower_case outcomes) is one these runs print
    word_pattern = (
        r"(?<![\w:/.-])([A-Z][a-z]+(?:[A-Z][a-z]+)+|[A-Z]{4,}(?:_[A-Z]+)*|[a-z]+_[a-z_]+)(?![\w:/.-])"
    )
    for word in re.findall(word_pattern, shown):
        assert word in words, word
