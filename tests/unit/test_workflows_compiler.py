"""Shape of the compiled ASL (the execution semantics are covered by the integration tests)."""

from __future__ import annotations

import json

import pytest

import saga_outbox.workflows
from examples.orders.workflows import ORDER_PROJECTION, ORDER_SAGA
from saga_outbox import TRANSIENT_ERRORS
from saga_outbox.workflows import (
    REJECTION_PREFIX,
    CompilationError,
    RetryPolicy,
    Step,
    Workflow,
    WorkflowKind,
    compile_definition,
    function_timeout_seconds,
    task_timeout_seconds,
    to_json,
)
from saga_outbox.workflows.outcomes import is_rejection

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
    assert task["TimeoutSeconds"] == task_timeout_seconds(30) > 30
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

    def on_failure(name: str) -> tuple[str, str]:
        """(next state when rejected, next state when the outcome is unknown)"""
        assert catch(name) == {
            "ErrorEquals": ["States.ALL"],
            "ResultPath": "$.error",
            "Next": f"{name}Failed",
        }
        choice = states[f"{name}Failed"]
        (rule,) = choice["Choices"]
        assert rule["Variable"] == "$.error.Error" and rule["StringMatches"] == f"{REJECTION_PREFIX}*"
        return rule["Next"], choice["Default"]

    # a rejection skips the step's own compensation; an unknown outcome undoes the step itself
    assert on_failure("ReserveInventory") == ("CancelOrder", "CompensateReserveInventory")
    assert on_failure("ChargePayment") == ("CompensateReserveInventory", "CompensateChargePayment")
    assert on_failure("CreateShipment") == ("CompensateChargePayment", "CompensateCreateShipment")
    # the pivot (on_success): rejected undoes everything; unknown cannot be undone -> alarm
    assert on_failure("ConfirmOrder") == ("CompensateCreateShipment", "ConfirmOrderUnresolved")
    assert states["ConfirmOrderUnresolved"] == {
        "Type": "Pass",
        "Comment": states["ConfirmOrderUnresolved"]["Comment"],
        "InputPath": "$.error",
        "ResultPath": "$.failed.ConfirmOrder",
        "Next": "CompensationFailed",
    }
    assert states["CompensateCreateShipment"]["Next"] == "CompensateChargePayment"
    assert states["CompensateChargePayment"]["Next"] == "CompensateReserveInventory"
    assert states["CompensateReserveInventory"]["Next"] == "CancelOrder"
    assert states["CancelOrder"]["Next"] == "MarkCompensated"
    for name in ("CompensateChargePayment", "CompensateReserveInventory", "CancelOrder"):
        assert catch(name) == {
            "ErrorEquals": ["States.ALL"],
            "ResultPath": f"$.failed.{name}",
            "Next": "CompensationFailed",
        }


def test_a_step_after_the_pivot_alarms_instead_of_compensating() -> None:
    forever = RetryPolicy(errors=("States.ALL",), max_attempts=5)
    w = Workflow(
        name="W",
        steps=[
            Step(name="Book", action="book", compensation="unbook"),
            Step(name="Ship", action="ship"),
            Step(name="Notify", action="notify", retry=forever),
        ],
    )
    states = compile_definition(w, function_arns={"steps": ARN})["States"]
    assert states["ShipFailed"]["Choices"][0]["Next"] == "CompensateBook"
    assert states["ShipFailed"]["Default"] == "ShipUnresolved"
    assert states["Notify"]["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.failed.Notify", "Next": "CompensationFailed"}
    ]
    assert "NotifyFailed" not in states and "CompensateShip" not in states


def test_rejection_rules() -> None:
    lam = Step(name="A", action="a")
    token = Step(name="T", action="t", integration="lambda.waitForTaskToken")
    assert is_rejection(lam, "Rejected.PaymentDeclined")
    for unknown in ("DatabaseUnavailable", "States.Timeout", "Lambda.Unknown", "PaymentDeclined", "KeyError"):
        assert not is_rejection(lam, unknown), unknown
    # a task-token step: the completer's SendTaskFailure name is its answer; AWS's are not
    assert is_rejection(token, "ApprovalRejected") and is_rejection(token, "Rejected.X")
    for unknown in ("States.Timeout", "States.HeartbeatTimeout", "Lambda.Unknown", "DatabaseUnavailable"):
        assert not is_rejection(token, unknown), unknown


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
    # the cause names what failed: {state: {Error, Cause}} built from $.failed
    assert states["CompensationFailed"]["CausePath"] == "States.JsonToString($.failed)"
    assert "Cause" not in states["CompensationFailed"]


def test_every_next_points_at_an_existing_state(saga: dict) -> None:
    states = saga["States"]
    for name, state in states.items():
        targets = [state.get("Next"), state.get("Default")]
        targets += [c["Next"] for c in (*state.get("Catch", []), *state.get("Choices", []))]
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
    assert asl["States"]["ProjectOrder"]["TimeoutSeconds"] == task_timeout_seconds(10)


def test_first_step_failure_without_hook_goes_straight_to_compensated() -> None:
    w = Workflow(name="W", steps=[Step(name="A", action="a", retry=RetryPolicy(max_attempts=1))])
    asl = compile_definition(w, function_arns={"steps": ARN})
    assert asl["States"]["A"]["Catch"][0]["Next"] == "AFailed"
    assert asl["States"]["AFailed"]["Choices"][0]["Next"] == "MarkCompensated"  # rejected
    assert asl["States"]["AFailed"]["Default"] == "AUnresolved"  # the pivot: cannot be undone
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


def test_transient_lambda_errors_are_retried() -> None:
    """AWS's "handle Lambda service exceptions" list, plus crashes and timeouts (idempotent
    steps make a retry safe), all in the one list every default Retry uses."""
    for name in (
        "Lambda.ClientExecutionTimeoutException",
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
        "Lambda.Unknown",
        "Sandbox.Timedout",
        "States.Timeout",
    ):
        assert name in TRANSIENT_ERRORS, name
    assert not any(n.startswith(REJECTION_PREFIX) for n in TRANSIENT_ERRORS)


def test_task_timeouts_outlast_the_function_timeout() -> None:
    """Each Task's TimeoutSeconds exceeds the steps function's timeout with margin: the Lambda
    times out (a retried Lambda.Unknown/Sandbox.Timedout) before the Task gives up on it."""
    from examples.orders.app import app

    function = function_timeout_seconds(app.workflows, function="steps")
    assert function == 30  # the longest step of the orders app
    assert task_timeout_seconds(function) >= function + 10  # Init phase + round trip
    for wf in app.workflows:
        asl = compile_definition(wf, function_arns={"steps": ARN}, function_timeouts={"steps": function})
        tasks = [s for s in asl["States"].values() if s["Type"] == "Task"]
        assert tasks and all(t["TimeoutSeconds"] == task_timeout_seconds(function) for t in tasks), wf.name
    # a token step waits its own time, never less than a request/response Task
    w = Workflow(name="W", steps=[Step(name="T", action="t", integration="lambda.waitForTaskToken")])
    assert compile_definition(w, function_arns={"steps": ARN})["States"]["T"]["TimeoutSeconds"] == 43


def test_function_timeout_must_cover_every_step() -> None:
    w = Workflow(name="W", steps=[Step(name="Slow", action="slow", timeout_seconds=60)])
    assert function_timeout_seconds([w]) == 60
    with pytest.raises(CompilationError, match=r"timeout 30 .*'Slow'.*60 s"):
        compile_definition(w, function_arns={"steps": ARN}, function_timeouts={"steps": 30})
    with pytest.raises(CompilationError, match="no function timeout for 'steps'"):
        compile_definition(w, function_arns={"steps": ARN}, function_timeouts={"other": 60})
    with pytest.raises(CompilationError, match="function timeout 0"):
        task_timeout_seconds(0)


def test_express_duration_is_checked_with_the_real_task_timeouts() -> None:
    once = RetryPolicy(max_attempts=1)
    w = Workflow(
        name="P",
        kind=WorkflowKind.EXPRESS,
        steps=[
            Step(name=f"S{i}", action="a", retry=once, timeout_seconds=10, idempotent=True) for i in range(6)
        ],
    )
    compile_definition(w, function_arns={"steps": ARN})  # 6 x 22 s fits in 300 s
    # on a function that may run 60 s, each Task waits 76 s: 456 s > 300 s
    with pytest.raises(CompilationError, match=r"456.*300 s Express limit"):
        compile_definition(w, function_arns={"steps": ARN}, function_timeouts={"steps": 60})
