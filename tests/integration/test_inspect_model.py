"""Pure parts of the inspector (no AWS): definitions, history edge cases, console links."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import saga_outbox.inspector as inspect_pkg
from saga_outbox.inspector import (
    InvalidDefinition,
    Outcome,
    build_report,
    console_execution_url,
    console_state_machine_url,
    is_real_aws_endpoint,
    parse_definition,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)
SM = "arn:aws:states:eu-west-1:111122223333:stateMachine:OrderSaga"
EX = "arn:aws:states:eu-west-1:111122223333:execution:OrderSaga:e1"
DEFINITION = {
    "StartAt": "Reserve",
    "States": {
        "Reserve": {"Type": "Task", "Resource": "x", "Next": "Charge"},
        "Charge": {
            "Type": "Task",
            "Resource": "x",
            "Next": "Done",
            "Retry": [{"ErrorEquals": ["States.ALL"]}],
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "UndoReservation"}],
        },
        # neither a recognised prefix nor a "step": found by its Payload kind, paired by order
        "UndoReservation": {
            "Type": "Task",
            "Resource": "x",
            "Parameters": {"Payload": {"kind": "compensation"}},
            "Next": "Compensated",
        },
        "Compensated": {"Type": "Fail", "Error": "SagaCompensated"},
        "Done": {"Type": "Succeed"},
    },
}


def _events(*spec: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, (kind, details) in enumerate(spec, start=1):
        key = {
            "ExecutionStarted": "executionStartedEventDetails",
            "ExecutionFailed": "executionFailedEventDetails",
        }.get(kind, "stateEnteredEventDetails" if kind.endswith("Entered") else "stateExitedEventDetails")
        if kind.startswith("Task") and not kind.endswith(("Entered", "Exited")):
            key = "task" + kind[4:] + "EventDetails"
        out.append({"id": i, "type": kind, "timestamp": T0 + timedelta(milliseconds=10 * i), key: details})
    return out


def test_retry_then_success_is_succeeded_and_running_state_is_running() -> None:
    events = _events(
        ("ExecutionStarted", {"input": "{}"}),
        ("TaskStateEntered", {"name": "Reserve", "input": "{}"}),
        ("TaskSucceeded", {"output": "{}"}),
        ("TaskStateExited", {"name": "Reserve", "output": "{}"}),
        ("TaskStateEntered", {"name": "Charge", "input": "{}"}),
        ("TaskFailed", {"error": "Boom", "cause": "first try"}),
        ("TaskSucceeded", {"output": "{}"}),
        ("TaskStateExited", {"name": "Charge", "output": "{}"}),
        ("SucceedStateEntered", {"name": "Done", "input": "{}"}),
    )
    report = build_report(
        {"executionArn": EX, "stateMachineArn": SM, "status": "RUNNING"}, DEFINITION, events
    )
    assert report.outcomes["Charge"] == "succeeded"
    assert report.state("Charge").last_run is not None and report.state("Charge").last_run.error is None
    assert report.outcomes["Done"] == "succeeded"
    assert report.saga_outcome == "running"
    assert [e.elapsed_ms for e in report.events][:3] == [0, 10, 20]
    assert report.events[5].state == "Charge" and report.events[5].error == "Boom"

    still = build_report({"status": "RUNNING"}, DEFINITION, events[:6])
    assert still.outcomes["Charge"] == "running"
    assert still.outcomes["Done"] == "not_reached"


def test_compensation_paired_by_order_when_its_target_cannot_be_named() -> None:
    events = _events(
        ("ExecutionStarted", {"input": "{}"}),
        ("TaskStateEntered", {"name": "Reserve", "input": "{}"}),
        ("TaskStateExited", {"name": "Reserve", "output": "{}"}),
        ("TaskStateEntered", {"name": "Charge", "input": "{}"}),
        ("TaskFailed", {"error": "Declined"}),
        ("TaskStateExited", {"name": "Charge", "output": "{}"}),
        ("TaskStateEntered", {"name": "UndoReservation", "input": "{}"}),
        ("TaskStateExited", {"name": "UndoReservation", "output": "{}"}),
        ("FailStateEntered", {"name": "Compensated", "input": "{}"}),
        ("ExecutionFailed", {"error": "SagaCompensated"}),
    )
    report = build_report({"status": "FAILED", "error": "SagaCompensated"}, DEFINITION, events)
    assert report.outcomes == {
        "Reserve": Outcome.COMPENSATED,
        "Charge": Outcome.FAILED,
        "UndoReservation": Outcome.SUCCEEDED,
        "Compensated": Outcome.FAILED,
        "Done": Outcome.NOT_REACHED,
    }
    assert report.state("Reserve").compensated_by == "UndoReservation"
    assert report.saga_outcome == "compensated"


def test_uncaught_task_failure_marks_the_open_state_failed() -> None:
    events = _events(
        ("ExecutionStarted", {"input": "{}"}),
        ("TaskStateEntered", {"name": "Reserve", "input": "{}"}),
        ("TaskFailed", {"error": "Boom"}),
        ("ExecutionFailed", {"error": "Boom", "cause": "c"}),
    )
    report = build_report({"status": "FAILED"}, DEFINITION, events)
    assert report.outcomes["Reserve"] == "failed"
    assert report.saga_outcome == "failed"


def test_definition_errors_and_layout() -> None:
    with pytest.raises(InvalidDefinition):
        parse_definition("not json")
    with pytest.raises(InvalidDefinition):
        parse_definition({"States": {}})
    graph = parse_definition(DEFINITION)
    layers = {n.name: n.layer for n in graph.nodes}
    assert layers == {"Reserve": 0, "Charge": 1, "Done": 2, "UndoReservation": 2, "Compensated": 3}
    assert graph.node("UndoReservation") is not None and graph.node("UndoReservation").compensation  # type: ignore[union-attr]
    assert all(
        n.x >= 0 and n.x + n.width <= graph.width and n.y + n.height <= graph.height for n in graph.nodes
    )


def test_console_links() -> None:
    assert console_execution_url(EX) == (
        "https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1#/v2/executions/details/" + EX
    )
    assert console_state_machine_url(SM).endswith("#/statemachines/view/" + SM)
    gov = "arn:aws-us-gov:states:us-gov-west-1:1:execution:S:e"
    assert console_execution_url(gov).startswith(
        "https://console.amazonaws-us-gov.com/states/home?region=us-gov-west-1"
    )
    assert is_real_aws_endpoint(None)
    assert is_real_aws_endpoint("https://states.eu-west-1.amazonaws.com")
    assert not is_real_aws_endpoint("http://localhost:5000")
    with pytest.raises(ValueError):
        console_execution_url("not-an-arn")


def test_public_exports_are_pinned() -> None:
    assert sorted(inspect_pkg.__all__) == [
        "EventRow", "ExecutionInspector", "ExecutionNotFound", "ExecutionReport", "ExecutionSummary",
        "GraphEdge", "GraphNode", "InspectorAWSError", "InspectorError", "InspectorServer",
        "InvalidDefinition", "Outcome", "StateGraph", "StateMachineNotFound", "StateMachineSummary",
        "StateReport", "StateRun", "build_report", "console_execution_url", "console_state_machine_url",
        "is_real_aws_endpoint", "parse_definition", "parse_history", "serve_inspector",
    ]  # fmt: skip
    for name in inspect_pkg.__all__:
        assert getattr(inspect_pkg, name) is not None
    errors = [
        getattr(inspect_pkg, n)
        for n in inspect_pkg.__all__
        if n.endswith(("Error", "NotFound", "Definition"))
    ]
    assert all(issubclass(e, inspect_pkg.InspectorError) for e in errors)
