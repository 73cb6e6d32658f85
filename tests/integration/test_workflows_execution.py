"""The compiled ASL executed by moto's Step Functions interpreter, with the steps Lambda bridged
to a small in-process handler. Checks saga semantics through the execution history."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from examples.orders.workflows import ORDER_PROJECTION, ORDER_SAGA
from saga_outbox.local import lambda_bridge
from saga_outbox.workflows import Workflow, compile_definition, execution_name

pytestmark = pytest.mark.integration

MOTO_CONFIG: Any = {"lambda": {"use_docker": False}, "stepfunctions": {"execute_state_machine": True}}
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:steps"
ROLE_ARN = "arn:aws:iam::123456789012:role/saga"
DOC = Path(__file__).resolve().parents[2] / "docs" / "workflows.md"


class DatabaseUnavailable(Exception):
    """What the test handler raises: named like the handlers' transient error, so the order
    workflows retry it (a business error would go straight to compensation). When its retries
    run out the step's outcome is unknown: it may have committed."""


def named_error(name: str) -> type[Exception]:
    """An exception whose Lambda ``errorType`` (its class name) is ``name``: how a function
    reports ``Rejected.PaymentDeclined`` or ``Lambda.Unknown`` through the bridge."""
    return type(name, (Exception,), {})


class Recorder:
    """The steps Lambda for tests: records every call per execution; fails the actions listed in
    ``payload["fail"]`` always (an unknown outcome once retries run out), those in
    ``payload["reject"]`` always with a declared rejection (``Rejected.<action>``: nothing
    happened), and those in ``payload["fail_once"]`` (action -> error name, default
    DatabaseUnavailable) on their first attempt."""

    def __init__(self) -> None:
        self.calls: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        payload = event["event"].get("payload", {})
        with self._lock:
            calls = self.calls[event["execution"]]
            calls.append(event)
            attempts = sum(1 for c in calls if c["state"] == event["state"])
        action = event["action"]
        if action in payload.get("fail", ()):
            raise DatabaseUnavailable(f"{action} failed")
        if action in payload.get("reject", ()):
            raise named_error(f"Rejected.{action}")(f"{action} declined")
        once = payload.get("fail_once", {})
        if action in once and attempts == 1:
            raise named_error(once[action] or "DatabaseUnavailable")(f"{action} failed once")
        return {"done": action, "attempt": attempts}

    def actions(self, execution: str) -> list[str]:
        return [c["action"] for c in self.calls[execution]]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def sfn(aws_env: None, recorder: Recorder) -> Iterator[Any]:
    with mock_aws(config=MOTO_CONFIG), lambda_bridge({"steps": recorder}):
        yield boto3.client("stepfunctions", region_name="us-east-1")


def deploy(sfn: Any, workflow: Workflow) -> str:
    definition = compile_definition(workflow, function_arns={"steps": FUNCTION_ARN})
    return sfn.create_state_machine(
        name=workflow.name, definition=json.dumps(definition), roleArn=ROLE_ARN, type=str(workflow.kind)
    )["stateMachineArn"]


def envelope(event_type: str = "OrderPlaced", **payload: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "aggregate_type": "order",
        "aggregate_key": "o-1",
        "occurred_at": "2026-01-01T00:00:00Z",
        "headers": {},
        "payload": payload,
    }


def start(sfn: Any, machine: str, workflow: Workflow, event: dict[str, Any]) -> tuple[str, str]:
    name = execution_name(workflow.name, event["event_id"])
    arn = sfn.start_execution(stateMachineArn=machine, name=name, input=json.dumps(event))["executionArn"]
    return name, arn


def wait(sfn: Any, arn: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        desc = sfn.describe_execution(executionArn=arn)
        if desc["status"] != "RUNNING":
            return desc
        assert time.monotonic() < deadline, f"execution still running: {arn}"
        time.sleep(0.05)


def entered_states(sfn: Any, arn: str) -> list[str]:
    events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]


HAPPY = [
    "Start",
    "ReserveInventory",
    "ChargePayment",
    "CreateShipment",
    "ConfirmOrder",
    "MarkCompleted",
    "SagaCompleted",
]
UNDONE = ["CancelOrder", "MarkCompensated", "SagaCompensated"]
ACTIONS = ["reserve_inventory", "charge_payment", "create_shipment", "confirm_order"]

# scenario -> (payload, expected status, states entered, actions called, words in the cause)
SAGA_SCENARIOS: dict[str, tuple[dict[str, Any], str, list[str], list[str], list[str]]] = {
    "happy path": ({}, "SUCCEEDED", HAPPY, ACTIONS, []),
    # unknown outcome (transient retries exhausted): the failing step itself is undone too
    "ReserveInventory fails": (
        {"fail": ["reserve_inventory"]},
        "SUCCEEDED",
        ["Start", "ReserveInventory", "ReserveInventoryFailed", "CompensateReserveInventory", *UNDONE],
        ["reserve_inventory"] * 3 + ["release_inventory", "cancel_order"],
        [],
    ),
    # a declared rejection proves nothing happened: not retried, its own compensation skipped
    "ReserveInventory rejected": (
        {"reject": ["reserve_inventory"]},
        "SUCCEEDED",
        ["Start", "ReserveInventory", "ReserveInventoryFailed", *UNDONE],
        ["reserve_inventory", "cancel_order"],
        [],
    ),
    "ChargePayment fails": (
        {"fail": ["charge_payment"]},
        "SUCCEEDED",
        [
            *HAPPY[:3],
            "ChargePaymentFailed",
            "CompensateChargePayment",
            "CompensateReserveInventory",
            *UNDONE,
        ],
        ["reserve_inventory", *["charge_payment"] * 3, "refund_payment", "release_inventory", "cancel_order"],
        [],
    ),
    "ChargePayment rejected": (
        {"reject": ["charge_payment"]},
        "SUCCEEDED",
        [*HAPPY[:3], "ChargePaymentFailed", "CompensateReserveInventory", *UNDONE],
        ["reserve_inventory", "charge_payment", "release_inventory", "cancel_order"],
        [],
    ),
    "CreateShipment fails": (
        {"fail": ["create_shipment"]},
        "SUCCEEDED",
        [
            *HAPPY[:4],
            "CreateShipmentFailed",
            "CompensateCreateShipment",
            "CompensateChargePayment",
            "CompensateReserveInventory",
            *UNDONE,
        ],
        [
            *ACTIONS[:2],
            *["create_shipment"] * 3,
            "cancel_shipment",
            "refund_payment",
            "release_inventory",
            "cancel_order",
        ],
        [],
    ),
    # the pivot (first step without compensation) rejected: everything before it is undone
    "on_success hook rejected": (
        {"reject": ["confirm_order"]},
        "SUCCEEDED",
        [
            *HAPPY[:5],
            "ConfirmOrderFailed",
            "CompensateCreateShipment",
            "CompensateChargePayment",
            "CompensateReserveInventory",
            *UNDONE,
        ],
        [*ACTIONS, "cancel_shipment", "refund_payment", "release_inventory", "cancel_order"],
        [],
    ),
    # the pivot's outcome unknown: it cannot be undone, so nothing is undone blindly; alarm
    "on_success hook fails": (
        {"fail": ["confirm_order"]},
        "FAILED",
        [*HAPPY[:5], "ConfirmOrderFailed", "ConfirmOrderUnresolved", "CompensationFailed"],
        [*ACTIONS, "confirm_order", "confirm_order"],
        ["ConfirmOrder", "DatabaseUnavailable"],
    ),
    "refund fails": (
        {"reject": ["create_shipment"], "fail": ["refund_payment"]},
        "FAILED",
        [*HAPPY[:4], "CreateShipmentFailed", "CompensateChargePayment", "CompensationFailed"],
        [*ACTIONS[:3], *["refund_payment"] * 3],
        ["CompensateChargePayment", "DatabaseUnavailable", "refund_payment failed"],
    ),
    "cancel hook fails": (
        {"reject": ["reserve_inventory"], "fail": ["cancel_order"]},
        "FAILED",
        ["Start", "ReserveInventory", "ReserveInventoryFailed", "CancelOrder", "CompensationFailed"],
        ["reserve_inventory", *["cancel_order"] * 3],
        ["CancelOrder", "DatabaseUnavailable"],
    ),
    "transient failure is retried": (
        {"fail_once": {"charge_payment": None}},
        "SUCCEEDED",
        HAPPY,
        ["reserve_inventory", "charge_payment", *ACTIONS[1:]],
        [],
    ),
    # AWS's transient Lambda errors are retried, not compensated
    "Lambda service errors are retried": (
        {
            "fail_once": {
                "reserve_inventory": "Lambda.ClientExecutionTimeoutException",
                "charge_payment": "Lambda.Unknown",
                "create_shipment": "Sandbox.Timedout",
            }
        },
        "SUCCEEDED",
        HAPPY,
        [*["reserve_inventory"] * 2, *["charge_payment"] * 2, *["create_shipment"] * 2, "confirm_order"],
        [],
    ),
}


def test_order_saga_outcomes(sfn: Any, recorder: Recorder) -> None:
    """All scenarios run concurrently (moto really sleeps between retries: ~6 s in total)."""
    machine = deploy(sfn, ORDER_SAGA)
    started = {
        scenario: start(sfn, machine, ORDER_SAGA, envelope(**payload))
        for scenario, (payload, *_) in SAGA_SCENARIOS.items()
    }
    for scenario, (_, status, states, actions, cause_words) in SAGA_SCENARIOS.items():
        name, arn = started[scenario]
        desc = wait(sfn, arn)
        assert desc["status"] == status, scenario
        assert entered_states(sfn, arn) == states, scenario
        assert recorder.actions(name) == actions, scenario
        if status == "SUCCEEDED":
            output = json.loads(desc["output"])
            assert output["status"] == ("completed" if states[-1] == "SagaCompleted" else "compensated"), (
                scenario
            )
        else:
            # the operator reads which state failed, with its error and cause, off the execution
            assert desc["error"] == "CompensationFailed", scenario
            for word in cause_words:
                assert word in desc["cause"], (scenario, word, desc["cause"])


def test_tasks_receive_the_contract_payload(sfn: Any, recorder: Recorder) -> None:
    machine = deploy(sfn, ORDER_SAGA)
    event = envelope(fail=["create_shipment"], amount=42)
    name, arn = start(sfn, machine, ORDER_SAGA, event)
    output = json.loads(wait(sfn, arn)["output"])

    calls = {c["state"]: c for c in recorder.calls[name]}
    charge = calls["ChargePayment"]
    assert charge == {
        "workflow": "OrderSaga",
        "step": "ChargePayment",
        "action": "charge_payment",
        "kind": "action",
        "execution": name,
        "state": "ChargePayment",
        "event": event,
        "results": {"ReserveInventory": {"output": {"done": "reserve_inventory", "attempt": 1}}},
    }
    refund = calls["CompensateChargePayment"]
    assert (refund["step"], refund["action"], refund["kind"]) == (
        "ChargePayment",
        "refund_payment",
        "compensation",
    )
    assert refund["results"]["ChargePayment"]["output"]["done"] == "charge_payment"
    assert calls["CancelOrder"]["kind"] == "hook"
    assert output["event"] == event
    assert output["error"]["Error"] == "DatabaseUnavailable"
    assert set(output["results"]) == {
        "ReserveInventory",
        "ChargePayment",
        "CompensateCreateShipment",  # its outcome is unknown: undone too
        "CompensateChargePayment",
        "CompensateReserveInventory",
        "CancelOrder",
    }


def test_same_event_starts_one_execution(sfn: Any, recorder: Recorder) -> None:
    machine = deploy(sfn, ORDER_SAGA)
    event = envelope()
    name, first = start(sfn, machine, ORDER_SAGA, event)
    _, again = start(sfn, machine, ORDER_SAGA, event)
    assert again == first
    wait(sfn, first)
    assert recorder.actions(name).count("charge_payment") == 1
    with pytest.raises(sfn.exceptions.ExecutionAlreadyExists):
        sfn.start_execution(
            stateMachineArn=machine, name=name, input=json.dumps({**event, "payload": {"x": 1}})
        )


def test_order_projection_express(sfn: Any, recorder: Recorder) -> None:
    machine = deploy(sfn, ORDER_PROJECTION)
    assert sfn.describe_state_machine(stateMachineArn=machine)["type"] == "EXPRESS"
    ok_name, ok = start(sfn, machine, ORDER_PROJECTION, envelope("OrderConfirmed"))
    bad_name, bad = start(
        sfn, machine, ORDER_PROJECTION, envelope("OrderCancelled", fail=["record_notification"])
    )

    assert wait(sfn, ok)["status"] == "SUCCEEDED"
    assert recorder.actions(ok_name) == ["project_order", "record_notification"]
    failed = wait(sfn, bad)
    assert (failed["status"], failed["error"]) == ("FAILED", "DatabaseUnavailable")
    assert recorder.actions(bad_name) == ["project_order", "record_notification", "record_notification"]


def docs_example() -> dict[str, Any]:
    """Run the first python block of docs/workflows.md and return its namespace."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    exec(compile(blocks[0], str(DOC), "exec"), namespace)
    return namespace


def test_docs_example_runs_happy_path(aws_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    example = docs_example()
    assert json.loads(capsys.readouterr().out) == example["asl"]
    trip = example["TRIP_SAGA"]
    with mock_aws(config=MOTO_CONFIG), lambda_bridge({"steps": example["handler"]}):
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        machine = deploy(sfn, trip)
        _, arn = start(sfn, machine, trip, envelope("TripBooked", trip_id="T1"))
        desc = wait(sfn, arn)
    output = json.loads(desc["output"])
    assert (desc["status"], output["status"]) == ("SUCCEEDED", "completed")
    assert output["results"]["BookHotel"] == {"output": {"hotel": "HT-T1"}}


def test_docs_example_compensates_in_reverse(aws_env: None) -> None:
    example = docs_example()
    trip = example["TRIP_SAGA"]
    seen: list[str] = []

    def card_declined(event: dict[str, Any], context: Any) -> Any:
        seen.append(event["action"])
        if event["action"] == "charge_card":
            raise named_error("Rejected.CardDeclined")("declined")
        return example["handler"](event, context)

    with mock_aws(config=MOTO_CONFIG), lambda_bridge({"steps": card_declined}):
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        machine = deploy(sfn, trip)
        _, arn = start(sfn, machine, trip, envelope("TripBooked", trip_id="T2"))
        desc = wait(sfn, arn)
    output = json.loads(desc["output"])
    assert output["status"] == "compensated"
    assert output["results"]["CompensateBookFlight"] == {"output": {"cancelled": "FL-T2"}}
    assert seen == [
        "book_flight",
        "book_hotel",
        "charge_card",
        "charge_card",  # a States.ALL retrier retries rejections too (ASL matches no prefix)
        "cancel_hotel",
        "cancel_flight",
        "notify_traveller",
    ]


def test_task_token_step_and_step_timeout(aws_env: None) -> None:
    """waitForTaskToken completes on SendTaskSuccess; a step over its TimeoutSeconds fails with
    States.Timeout, an unknown outcome (it may have committed at the last second): it is
    compensated itself, then the steps before it."""
    from saga_outbox.workflows import RetryPolicy, Step

    once = RetryPolicy(max_attempts=1)
    workflow = Workflow(
        name="Approval",
        steps=[
            Step(name="Reserve", action="reserve", compensation="release", retry=once),
            Step(
                name="Approve", action="ask", compensation="withdraw", integration="lambda.waitForTaskToken"
            ),
            Step(name="Slow", action="slow", compensation="undo_slow", timeout_seconds=1, retry=once),
        ],
    )
    tokens: list[str] = []
    release = threading.Event()
    undone: list[str] = []

    def steps(event: dict[str, Any], context: Any) -> Any:
        if "task_token" in event:
            tokens.append(event["task_token"])
        if event["action"] == "slow":
            release.wait(5)
        if event["kind"] == "compensation":
            undone.append(event["action"])
        return {"done": event["action"]}

    definition = compile_definition(workflow, function_arns={"steps": FUNCTION_ARN})
    # every Task outlasts the function's timeout (30 s, the longest step), never the other way
    assert definition["States"]["Slow"]["TimeoutSeconds"] > 30
    definition["States"]["Slow"]["TimeoutSeconds"] = 1  # keep the test short
    with mock_aws(config=MOTO_CONFIG), lambda_bridge({"steps": steps}):
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        machine = sfn.create_state_machine(
            name=workflow.name, definition=json.dumps(definition), roleArn=ROLE_ARN
        )["stateMachineArn"]
        _, arn = start(sfn, machine, workflow, envelope())
        deadline = time.monotonic() + 10
        while not tokens:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        sfn.send_task_success(taskToken=tokens[0], output=json.dumps({"approved": True}))
        desc = wait(sfn, arn)
        release.set()
        states = entered_states(sfn, arn)
    output = json.loads(desc["output"])
    assert output["results"]["Approve"] == {"output": {"approved": True}}
    assert output["error"]["Error"] == "States.Timeout"
    assert states == [
        "Start",
        "Reserve",
        "Approve",
        "Slow",
        "SlowFailed",
        "CompensateSlow",
        "CompensateApprove",
        "CompensateReserve",
        "MarkCompensated",
        "SagaCompensated",
    ]
    assert undone == ["undo_slow", "withdraw", "release"]
