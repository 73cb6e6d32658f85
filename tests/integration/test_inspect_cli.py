"""The execution inspector against moto's real ASL interpreter: a saga that completes, one that
compensates, one whose compensation fails; CLI `executions list|show|history` and the Python API."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from saga_outbox.inspector import ExecutionInspector, ExecutionNotFound, Outcome, StateMachineNotFound
from saga_outbox.inspector.cli import main

pytestmark = pytest.mark.integration

MOTO_CONFIG: Any = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
ROLE_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)
CATCH_ALL = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error"}]


def _lambda_task(fn: str, step: str, kind: str, nxt: str) -> dict[str, Any]:
    """A task shaped like the saga compiler's (Payload with workflow/step/kind); moto echoes it."""
    payload = {"workflow": "OrderSaga", "step": step, "kind": kind, "execution.$": "$$.Execution.Name"}
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": fn, "Payload": payload},
        "ResultSelector": {"status.$": "$.StatusCode"},
        "ResultPath": f"$.results.{step}",
        "Next": nxt,
    }


def _put_item(table_path: str, step: str, nxt: str) -> dict[str, Any]:
    """A DynamoDB task that fails (ResourceNotFoundException) when the input names a missing table."""
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::dynamodb:putItem",
        "Parameters": {"TableName.$": table_path, "Item": {"pk": {"S.$": "$$.Execution.Name"}}},
        "ResultPath": f"$.results.{step}",
        "Next": nxt,
    }


def saga_definition(fn: str) -> dict[str, Any]:
    reserve = _lambda_task(fn, "ReserveStock", "action", "ChargePayment")
    reserve["Catch"] = [{**CATCH_ALL[0], "Next": "SagaFailed"}]
    charge = _put_item("$.event.payment_table", "ChargePayment", "ShipOrder")
    charge["Catch"] = [{**CATCH_ALL[0], "Next": "CompensateReserveStock"}]
    ship = _put_item("$.event.shipping_table", "ShipOrder", "Done")
    ship["Catch"] = [{**CATCH_ALL[0], "Next": "RefundPayment"}]
    # No Payload: recognised as a compensation by its name prefix, its target by the shared suffix.
    refund = _put_item("$.event.refund_table", "RefundPayment", "CompensateReserveStock")
    refund["ResultPath"] = None
    refund["Catch"] = [{**CATCH_ALL[0], "Next": "CompensationFailed"}]
    undo_reserve = _lambda_task(fn, "ReserveStock", "compensation", "SagaCompensated")
    undo_reserve["ResultPath"] = None
    undo_reserve["Catch"] = [{**CATCH_ALL[0], "Next": "CompensationFailed"}]
    return {
        "Comment": "OrderSaga (test copy)",
        "StartAt": "Wrap",
        "States": {
            "Wrap": {"Type": "Pass", "Parameters": {"event.$": "$", "results": {}}, "Next": "ReserveStock"},
            "ReserveStock": reserve,
            "ChargePayment": charge,
            "ShipOrder": ship,
            "Done": {"Type": "Succeed"},
            "RefundPayment": refund,
            "CompensateReserveStock": undo_reserve,
            "SagaCompensated": {
                "Type": "Fail",
                "Error": "SagaCompensated",
                "Cause": "completed steps undone",
            },
            "SagaFailed": {"Type": "Fail", "Error": "SagaFailed"},
            "CompensationFailed": {"Type": "Fail", "Error": "CompensationFailed"},
        },
    }


def _wait(sfn: Any, arn: str) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status = sfn.describe_execution(executionArn=arn)["status"]
        if status != "RUNNING":
            return str(status)
        time.sleep(0.05)
    raise AssertionError(f"execution still running: {arn}")


@pytest.fixture
def saga(aws_env: None) -> Iterator[dict[str, str]]:
    with mock_aws(config=MOTO_CONFIG):
        iam, ddb = boto3.client("iam"), boto3.client("dynamodb")
        role = iam.create_role(RoleName="saga-role", AssumeRolePolicyDocument=ROLE_POLICY)["Role"]["Arn"]
        for table in ("payments", "shipments"):
            ddb.create_table(
                TableName=table,
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as zf:
            zf.writestr("steps.py", "def handler(event, context):\n    return event\n")
        fn = boto3.client("lambda").create_function(
            FunctionName="order-steps",
            Runtime="python3.12",
            Role=role,
            Handler="steps.handler",
            Code={"ZipFile": code.getvalue()},
        )["FunctionArn"]
        sfn = boto3.client("stepfunctions")
        sm = sfn.create_state_machine(
            name="OrderSaga", definition=json.dumps(saga_definition(fn)), roleArn=role
        )["stateMachineArn"]
        sfn.create_state_machine(
            name="Other",
            roleArn=role,
            definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
        )
        runs = {
            "completed": {"payment_table": "payments", "shipping_table": "shipments"},
            "compensated": {
                "payment_table": "payments",
                "shipping_table": "missing",
                "refund_table": "payments",
            },
            "compensation-failed": {
                "payment_table": "payments",
                "shipping_table": "missing",
                "refund_table": "missing",
            },
        }
        arns = {"state_machine": sm}
        for name, event in runs.items():
            arn = sfn.start_execution(
                stateMachineArn=sm, name=name, input=json.dumps({"event_id": name, **event})
            )["executionArn"]
            _wait(sfn, arn)
            arns[name] = arn
        yield arns


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["executions", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_show_json_reports_the_compensation_path(
    saga: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "show", saga["compensated"], "--json")
    assert code == 0
    report = json.loads(out)
    assert report["status"] == "FAILED"
    assert report["saga_outcome"] == "compensated"
    assert report["error"] == "SagaCompensated"
    assert report["path"] == [
        *("Wrap", "ReserveStock", "ChargePayment", "ShipOrder"),
        *("RefundPayment", "CompensateReserveStock", "SagaCompensated"),
    ]
    # compensations ran in reverse order of the steps they undo
    assert report["compensations"] == ["RefundPayment", "CompensateReserveStock"]
    assert report["outcomes"] == {
        "Wrap": "succeeded",
        "ReserveStock": "compensated",
        "ChargePayment": "compensated",
        "ShipOrder": "failed",
        "Done": "not_reached",
        "RefundPayment": "succeeded",
        "CompensateReserveStock": "succeeded",
        "SagaCompensated": "failed",
        "SagaFailed": "not_reached",
        "CompensationFailed": "not_reached",
    }
    states = {s["name"]: s for s in report["states"]}
    assert states["ShipOrder"]["error"] == "DynamoDB.ResourceNotFoundException"
    assert states["ChargePayment"]["compensated_by"] == "RefundPayment"
    assert states["ReserveStock"]["compensated_by"] == "CompensateReserveStock"
    assert (
        states["RefundPayment"]["compensates"] == "ChargePayment"
    )  # by name: Refund<Payment> ~ Charge<Payment>
    assert states["CompensateReserveStock"]["compensates"] == "ReserveStock"  # by Payload kind + step
    assert json.loads(states["ShipOrder"]["input"])["results"].keys() == {"ReserveStock", "ChargePayment"}
    assert "events" not in report and "graph" not in report  # only with --full


def test_show_completed_and_compensation_failed(
    saga: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    inspector = ExecutionInspector()
    done = inspector.describe_execution(saga["completed"])
    assert done.status == "SUCCEEDED" and done.saga_outcome == "completed"
    assert done.compensations == ()
    assert done.state("ShipOrder").outcome is Outcome.SUCCEEDED
    assert done.state("Done").outcome is Outcome.SUCCEEDED
    assert done.state("RefundPayment").outcome is Outcome.NOT_REACHED

    broken = inspector.describe_execution(saga["compensation-failed"])
    assert broken.saga_outcome == "compensation_failed"
    assert broken.error == "CompensationFailed"
    assert broken.outcomes["RefundPayment"] == "failed"
    assert broken.outcomes["CompensationFailed"] == "failed"
    assert broken.outcomes["ChargePayment"] == "succeeded"  # its undo failed: not compensated
    assert broken.outcomes["CompensateReserveStock"] == "not_reached"

    code, out, _ = _run(capsys, "show", saga["compensation-failed"])
    assert code == 0
    assert "FAILED (saga: compensation_failed)" in out
    assert (
        "Path: Wrap -> ReserveStock -> ChargePayment -> ShipOrder -> RefundPayment -> CompensationFailed"
        in out
    )
    header = next(line for line in out.splitlines() if line.startswith("STATE"))
    refund = next(line for line in out.splitlines() if line.startswith("RefundPayment "))
    assert refund.index("failed") == header.index("OUTCOME")  # aligned columns


def test_history_lists_events_with_state_input_and_output(
    saga: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "history", saga["compensated"], "--json")
    assert code == 0
    events = json.loads(out)
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "ExecutionStarted" and events[0]["elapsed_ms"] == 0
    assert events[-1]["type"] == "ExecutionFailed"
    assert all(e["elapsed_ms"] >= 0 for e in events)
    failed = [e for e in events if e["type"] == "TaskFailed"]
    assert [e["state"] for e in failed] == ["ShipOrder"]
    assert failed[0]["error"] == "DynamoDB.ResourceNotFoundException"
    exited = {e["state"]: e for e in events if e["type"].endswith("StateExited")}
    assert json.loads(exited["Wrap"]["output"])["event"]["event_id"] == "compensated"
    entered = [e["state"] for e in events if e["type"].endswith("StateEntered")]
    assert entered[-2:] == ["CompensateReserveStock", "SagaCompensated"]

    code, out, _ = _run(capsys, "history", saga["compensated"])
    lines = out.splitlines()
    assert lines[0].split() == [
        "ID",
        "TYPE",
        "STATE",
        "TIMESTAMP",
        "ELAPSED",
        "MS",
        "INPUT",
        "OUTPUT",
        "ERROR",
    ]
    assert set(lines[1]) == {"-", " "}
    assert any("TaskFailed" in line and "ShipOrder" in line for line in lines)


def test_list_filters_by_status_and_state_machine(
    saga: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "list", "--status", "FAILED", "--json")
    assert code == 0
    assert sorted(e["name"] for e in json.loads(out)) == ["compensated", "compensation-failed"]

    code, out, _ = _run(capsys, "list", "--state-machine", "OrderSaga", "--status", "succeeded", "--json")
    assert [e["name"] for e in json.loads(out)] == ["completed"]

    code, out, _ = _run(capsys, "list", "--state-machine", saga["state_machine"], "--json")
    assert len(json.loads(out)) == 3

    code, out, _ = _run(capsys, "list")
    assert out.splitlines()[0].split()[:4] == ["NAME", "STATE", "MACHINE", "STATUS"]
    assert len(out.splitlines()) == 2 + 3


def test_unknown_names_are_reported_not_raised(
    saga: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    missing = saga["compensated"].rsplit(":", 1)[0] + ":nope"
    code, _, err = _run(capsys, "show", missing)
    assert code == 1
    assert f"execution not found: {missing}" in err

    code, _, err = _run(capsys, "list", "--state-machine", "NoSuchSaga")
    assert code == 1 and "state machine not found: NoSuchSaga" in err

    inspector = ExecutionInspector(boto3.client("stepfunctions"))
    with pytest.raises(ExecutionNotFound) as info:
        inspector.history(missing)
    assert info.value.execution_arn == missing
    assert isinstance(info.value.__cause__, ClientError)
    with pytest.raises(StateMachineNotFound):
        inspector.list_executions(state_machine=saga["state_machine"] + "-gone")


def test_graph_of_state_machine(saga: dict[str, str]) -> None:
    graph = ExecutionInspector().state_machine_graph("OrderSaga")
    assert graph.start_at == "Wrap"
    layers = {n.name: n.layer for n in graph.nodes}
    assert layers["Wrap"] < layers["ReserveStock"] < layers["ChargePayment"] < layers["ShipOrder"]
    kinds = {(e.source, e.target): e.kind for e in graph.edges}
    assert kinds[("ShipOrder", "RefundPayment")] == "catch"
    assert kinds[("ChargePayment", "ShipOrder")] == "next"
    assert {n.name for n in graph.nodes if n.compensation} == {"RefundPayment", "CompensateReserveStock"}
    boxes = [(n.x, n.y, n.x + n.width, n.y + n.height) for n in graph.nodes]
    for i, a in enumerate(boxes):  # no two nodes overlap
        for b in boxes[i + 1 :]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
