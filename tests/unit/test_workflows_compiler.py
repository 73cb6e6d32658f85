"""Shape of the compiled ASL (the execution semantics are covered by the integration tests)."""

from __future__ import annotations

import json

import pytest

import saga_outbox.workflows
from examples.orders.workflows import ORDER_PROJECTION, ORDER_SAGA
from saga_outbox import TRANSIENT_ERRORS
from saga_outbox.workflows import (
    CompilationError,
    RetryPolicy,
    Step,
    Workflow,
    WorkflowKind,
    compile_definition,
    to_json,
)

ARN = "arn:aws:lambda:us-east-1:123456789012:function:steps"


@pytest.fixture
def saga() -> dict:
    return compile_definition(ORDER_SAGA, function_arns={"steps": ARN})


def test_first_state_wraps_the_input(saga: dict) -> None:
    assert saga["StartAt"] == "Start"
    assert saga["States"]["Start"] == {
        "Type": "Pass",
        "Comment": saga["States"]["Start"]["Comment"],
        "Parameters": {"event.$": "$", "results": {}},
        "Next": "ReserveInventory",
    }


def test_task_payload_matches_the_contract(saga: dict) -> None:
    task = saga["States"]["ChargePayment"]
    assert task["Type"] == "Task"
    assert task["Resource"] == "arn:aws:states:::lambda:invoke"
    assert task["Parameters"] == {
        "FunctionName": ARN,
        "Payload": {
            "workflow": "OrderSaga",
            "step": "ChargePayment",
            "action": "charge_payment",
            "kind": "action",
            "execution.$": "$$.Execution.Name",
            "state.$": "$$.State.Name",
            "event.$": "$.event",
            "results.$": "$.results",
        },
    }
    assert task["ResultSelector"] == {"output.$": "$.Payload"}
    assert task["ResultPath"] == "$.results.ChargePayment"
    assert task["TimeoutSeconds"] == 30
    assert task["Retry"] == [
        {"ErrorEquals": list(TRANSIENT_ERRORS), "IntervalSeconds": 1, "BackoffRate": 2.0, "MaxAttempts": 2}
    ]
    assert task["Next"] == "CreateShipment"


def test_failures_enter_the_compensation_chain_in_reverse(saga: dict) -> None:
    states = saga["States"]

    def catch(name: str) -> dict:
        (entry,) = states[name]["Catch"]
        assert entry["ErrorEquals"] == ["States.ALL"]
        return entry

    assert catch("ReserveInventory") == {
        "ErrorEquals": ["States.ALL"],
        "ResultPath": "$.error",
        "Next": "CancelOrder",
    }
    assert catch("ChargePayment")["Next"] == "CompensateReserveInventory"
    assert catch("CreateShipment")["Next"] == "CompensateChargePayment"
    assert catch("ConfirmOrder")["Next"] == "CompensateChargePayment"  # hook failure undoes everything
    assert states["CompensateChargePayment"]["Next"] == "CompensateReserveInventory"
    assert states["CompensateReserveInventory"]["Next"] == "CancelOrder"
    assert states["CancelOrder"]["Next"] == "MarkCompensated"
    for name in ("CompensateChargePayment", "CompensateReserveInventory", "CancelOrder"):
        assert catch(name)["Next"] == "CompensationFailed"
    assert "CompensateCreateShipment" not in states


def test_compensation_task_payload(saga: dict) -> None:
    task = saga["States"]["CompensateChargePayment"]
    payload = task["Parameters"]["Payload"]
    assert (payload["step"], payload["action"], payload["kind"]) == (
        "ChargePayment",
        "refund_payment",
        "compensation",
    )
    assert task["ResultPath"] == "$.results.CompensateChargePayment"
    assert "Retry" in task


def test_terminal_states(saga: dict) -> None:
    states = saga["States"]
    assert states["ConfirmOrder"]["Parameters"]["Payload"]["kind"] == "hook"
    assert states["ConfirmOrder"]["Next"] == "MarkCompleted"
    assert states["MarkCompleted"] == {
        "Type": "Pass",
        "Result": "completed",
        "ResultPath": "$.status",
        "Next": "SagaCompleted",
    }
    assert states["MarkCompensated"]["Result"] == "compensated"
    assert states["SagaCompleted"] == {"Type": "Succeed"}
    assert states["SagaCompensated"] == {"Type": "Succeed"}
    assert states["CompensationFailed"]["Type"] == "Fail"
    assert states["CompensationFailed"]["Error"] == "CompensationFailed"
    assert states["CompensationFailed"]["Cause"]


def test_every_next_points_at_an_existing_state(saga: dict) -> None:
    states = saga["States"]
    for name, state in states.items():
        targets = [state.get("Next")] + [c["Next"] for c in state.get("Catch", [])]
        for target in filter(None, targets):
            assert target in states, f"{name} -> {target}"
        assert len(name) <= 80


def test_express_has_no_catch_or_compensation_states() -> None:
    asl = compile_definition(ORDER_PROJECTION, function_arns={"steps": ARN})
    assert list(asl["States"]) == [
        "Start",
        "ProjectOrder",
        "RecordNotification",
        "MarkCompleted",
        "SagaCompleted",
    ]
    assert all("Catch" not in s for s in asl["States"].values())
    assert asl["States"]["ProjectOrder"]["TimeoutSeconds"] == 10


def test_first_step_failure_without_hook_goes_straight_to_compensated() -> None:
    w = Workflow(name="W", steps=[Step(name="A", action="a", retry=RetryPolicy(max_attempts=1))])
    asl = compile_definition(w, function_arns={"steps": ARN})
    assert asl["States"]["A"]["Catch"][0]["Next"] == "MarkCompensated"
    assert "Retry" not in asl["States"]["A"]  # max_attempts=1: no retrier at all


def test_wait_for_task_token_step() -> None:
    w = Workflow(name="W", steps=[Step(name="Approve", action="ask", integration="lambda.waitForTaskToken")])
    task = compile_definition(w, function_arns={"steps": ARN})["States"]["Approve"]
    assert task["Resource"] == "arn:aws:states:::lambda:invoke.waitForTaskToken"
    assert task["Parameters"]["Payload"]["task_token.$"] == "$$.Task.Token"
    assert task["ResultSelector"] == {"output.$": "$"}


def test_function_key_selects_the_arn() -> None:
    w = Workflow(name="W", kind=WorkflowKind.STANDARD, steps=[Step(name="A", action="a")], function="billing")
    asl = compile_definition(w, function_arns={"billing": "arn:b", "steps": ARN})
    assert asl["States"]["A"]["Parameters"]["FunctionName"] == "arn:b"
    with pytest.raises(CompilationError, match="'billing'"):
        compile_definition(w, function_arns={"steps": ARN})
    with pytest.raises(saga_outbox.workflows.WorkflowError):
        compile_definition(w, function_arns={"billing": ""})


def test_to_json_round_trips_and_is_deterministic(saga: dict) -> None:
    text = to_json(saga)
    assert json.loads(text) == saga
    assert text == to_json(compile_definition(ORDER_SAGA, function_arns={"steps": ARN}))
