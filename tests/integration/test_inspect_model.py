"""Pure parts of the inspector (no AWS) on the compiler's own output: the saga outcome read off
the compiled end states, compensation pairing by Payload, the graph layout, console links."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import saga_outbox.inspector as inspect_pkg
from examples.orders.workflows import ORDER_PROJECTION, ORDER_SAGA
from saga_outbox.inspector import (
    InvalidDefinition,
    Outcome,
    StateGraph,
    build_report,
    console_execution_url,
    console_state_machine_url,
    is_real_aws_endpoint,
    parse_definition,
)
from saga_outbox.workflows.compiler import compile_definition

T0 = datetime(2025, 1, 1, tzinfo=UTC)
FUNCTION = "arn:aws:lambda:eu-west-1:111122223333:function:steps"
SAGA = compile_definition(ORDER_SAGA, function_arns={ORDER_SAGA.function: FUNCTION})
PROJECTION = compile_definition(ORDER_PROJECTION, function_arns={ORDER_PROJECTION.function: FUNCTION})
SM = "arn:aws:states:eu-west-1:111122223333:stateMachine:OrderSaga"
EX = "arn:aws:states:eu-west-1:111122223333:execution:OrderSaga:e1"


def _history(definition: dict[str, Any], path: list[str], *, fails: set[str] = frozenset()) -> list[dict]:  # type: ignore[assignment]
    """The events Step Functions writes for ``path``: each state entered and exited, a TaskFailed
    for the tasks in ``fails`` (caught, so they still exit), the execution's end."""
    events: list[dict[str, Any]] = []

    def add(kind: str, key: str, details: dict[str, Any]) -> None:
        stamp = T0 + timedelta(milliseconds=10 * len(events))
        events.append({"id": len(events) + 1, "type": kind, "timestamp": stamp, key: details})

    add("ExecutionStarted", "executionStartedEventDetails", {"input": "{}"})
    for name in path:
        kind = definition["States"][name]["Type"]
        add(f"{kind}StateEntered", "stateEnteredEventDetails", {"name": name, "input": "{}"})
        if name in fails:
            add("TaskFailed", "taskFailedEventDetails", {"error": "Boom", "cause": "rejected"})
        if kind == "Fail":
            add("ExecutionFailed", "executionFailedEventDetails", {"error": name})
            return events
        add(f"{kind}StateExited", "stateExitedEventDetails", {"name": name, "output": "{}"})
    add("ExecutionSucceeded", "executionSucceededEventDetails", {"output": "{}"})
    return events


def _report(path: list[str], status: str, fails: set[str] = frozenset(), definition: Any = SAGA):  # type: ignore[assignment]
    execution = {"executionArn": EX, "stateMachineArn": SM, "status": status}
    return build_report(execution, definition, _history(definition, path, fails=fails))


def test_first_step_rejection_is_compensated_not_completed() -> None:
    path = ["Start", "ReserveInventory", "CancelOrder", "MarkCompensated", "SagaCompensated"]
    report = _report(path, "SUCCEEDED", {"ReserveInventory"})
    assert report.status == "SUCCEEDED"
    assert report.saga_outcome == "compensated"
    assert report.compensations == ()  # nothing had taken effect: only the on_compensated hook ran
    assert report.outcomes["ReserveInventory"] == Outcome.FAILED
    assert report.outcomes["CancelOrder"] == Outcome.SUCCEEDED
    assert report.outcomes["ConfirmOrder"] == Outcome.NOT_REACHED


def test_full_compensation_pairs_each_undo_with_its_step_by_payload() -> None:
    path = [
        *("Start", "ReserveInventory", "ChargePayment", "CreateShipment"),
        *("CompensateChargePayment", "CompensateReserveInventory", "CancelOrder"),
        *("MarkCompensated", "SagaCompensated"),
    ]
    report = _report(path, "SUCCEEDED", {"CreateShipment"})
    assert report.saga_outcome == "compensated"
    assert report.compensations == ("CompensateChargePayment", "CompensateReserveInventory")
    assert report.state("ChargePayment").compensated_by == "CompensateChargePayment"
    assert report.state("ReserveInventory").compensated_by == "CompensateReserveInventory"
    assert report.state("CompensateChargePayment").compensates == "ChargePayment"
    assert report.outcomes["CreateShipment"] == Outcome.FAILED
    assert report.outcomes["ChargePayment"] == report.outcomes["ReserveInventory"] == Outcome.COMPENSATED
    assert report.state("CancelOrder").compensation is False  # a hook, not an undo


def test_failed_compensation_is_compensation_failed() -> None:
    path = [
        *("Start", "ReserveInventory", "ChargePayment", "CreateShipment"),
        *("CompensateChargePayment", "CompensationFailed"),
    ]
    report = _report(path, "FAILED", {"CreateShipment", "CompensateChargePayment"})
    assert report.saga_outcome == "compensation_failed"
    assert report.outcomes["ChargePayment"] == Outcome.SUCCEEDED  # its undo failed: not compensated
    assert report.outcomes["CompensateChargePayment"] == Outcome.FAILED
    assert report.outcomes["CompensateReserveInventory"] == Outcome.NOT_REACHED


def test_completed_running_and_express_outcomes() -> None:
    done = ["Start", "ReserveInventory", "ChargePayment", "CreateShipment", "ConfirmOrder"]
    assert _report([*done, "MarkCompleted", "SagaCompleted"], "SUCCEEDED").saga_outcome == "completed"
    open_events = _history(SAGA, done[:3])[:-2]  # ChargePayment entered, not exited
    running = build_report({"status": "RUNNING"}, SAGA, open_events)
    assert running.saga_outcome is None  # no end state reached yet
    assert running.outcomes["ChargePayment"] == Outcome.RUNNING
    express = ["Start", "ProjectOrder", "RecordNotification", "MarkCompleted", "SagaCompleted"]
    # an Express workflow is no saga: it has nothing to compensate, so no saga outcome
    assert _report(express, "SUCCEEDED", definition=PROJECTION).saga_outcome is None


def test_a_foreign_definition_gets_no_guessed_compensations() -> None:
    foreign = {
        "StartAt": "ReserveStock",
        "States": {
            "ReserveStock": {"Type": "Task", "Resource": "x", "Next": "Done"},
            "CompensateReserveStock": {"Type": "Task", "Resource": "x", "End": True},
            "Done": {"Type": "Succeed"},
        },
    }
    graph = parse_definition(foreign)
    assert not graph.saga
    assert not any(n.compensation for n in graph.nodes)  # a name alone makes no compensation
    report = build_report({"status": "SUCCEEDED"}, foreign, _history(foreign, ["ReserveStock", "Done"]))
    assert report.saga_outcome is None


def _crosses(segment: tuple[tuple[float, float], tuple[float, float]], box: tuple[float, ...]) -> bool:
    """Whether a horizontal, vertical or diagonal segment passes through a box's interior."""
    (x1, y1), (x2, y2) = segment
    left, top, right, bottom = box
    for i in range(101):  # sampled: the routes are short and the boxes large
        x, y = x1 + (x2 - x1) * i / 100, y1 + (y2 - y1) * i / 100
        if left < x < right and top < y < bottom:
            return True
    return False


def _assert_routes_avoid_nodes(graph: StateGraph) -> None:
    for edge in graph.edges:
        assert len(edge.points) >= 2, edge
        for node in graph.nodes:
            if node.name in (edge.source, edge.target):
                continue
            box = (node.x, node.y, node.x + node.width, node.y + node.height)
            for segment in zip(edge.points, edge.points[1:], strict=False):
                assert not _crosses(segment, box), (edge.source, edge.target, node.name)


def test_layout_keeps_every_edge_off_other_nodes() -> None:
    graph = parse_definition(SAGA)
    assert graph.saga
    column = {n.name: n.column for n in graph.nodes}
    assert {column[n] for n in ("Start", "ReserveInventory", "CreateShipment", "MarkCompleted")} == {0}
    assert {column[n] for n in ("CompensateChargePayment", "CancelOrder", "MarkCompensated")} == {1}
    assert column["CompensationFailed"] == 2
    boxes = [(n.x, n.y, n.x + n.width, n.y + n.height) for n in graph.nodes]
    for i, a in enumerate(boxes):  # no two nodes overlap, all inside the drawing
        assert a[0] >= 0 and a[2] <= graph.width and a[3] <= graph.height
        for b in boxes[i + 1 :]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
    _assert_routes_avoid_nodes(graph)
    kinds = {(e.source, e.target): e.kind for e in graph.edges}
    assert kinds[("ReserveInventory", "CancelOrder")] == "catch"
    assert kinds[("CompensateChargePayment", "CompensationFailed")] == "catch"


def test_layout_of_loops_and_shared_rows_avoids_nodes() -> None:
    definition = {
        "StartAt": "Pick",
        "States": {
            "Pick": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.a", "BooleanEquals": True, "Next": "Left"}],
                "Default": "Right",
            },
            "Left": {"Type": "Pass", "Next": "Join"},
            "Right": {"Type": "Pass", "Next": "Join"},
            "Join": {"Type": "Pass", "Next": "Again"},
            "Again": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.b", "BooleanEquals": True, "Next": "Pick"}],
                "Default": "End",
            },
            "End": {"Type": "Succeed"},
        },
    }
    graph = parse_definition(definition)
    assert graph.node("Left").layer == graph.node("Right").layer  # type: ignore[union-attr]
    _assert_routes_avoid_nodes(graph)  # the loop back to Pick runs around the column


def test_definition_errors() -> None:
    with pytest.raises(InvalidDefinition):
        parse_definition("not json")
    with pytest.raises(InvalidDefinition):
        parse_definition({"States": {}})


def test_console_links_per_partition() -> None:
    assert console_execution_url(EX) == (
        "https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1#/v2/executions/details/" + EX
    )
    assert console_state_machine_url(SM) == (
        "https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1#/statemachines/view/" + SM
    )
    cn = "arn:aws-cn:states:cn-north-1:111122223333:execution:S:e"
    assert console_execution_url(cn) == (
        "https://console.amazonaws.cn/states/home?region=cn-north-1#/v2/executions/details/" + cn
    )
    gov = "arn:aws-us-gov:states:us-gov-west-1:111122223333:stateMachine:S"
    assert console_state_machine_url(gov) == (
        "https://console.amazonaws-us-gov.com/states/home?region=us-gov-west-1#/statemachines/view/" + gov
    )
    assert console_execution_url(EX, region="eu-central-1").startswith(
        "https://eu-central-1.console.aws.amazon.com/states/home?region=eu-central-1#"
    )
    for bad in (
        "not-an-arn",
        "arn:aws:lambda:eu-west-1:1:function:f",
        "arn:aws-iso:states:us-iso-east-1:1:execution:S:e",
    ):
        with pytest.raises(ValueError):
            console_execution_url(bad)
    assert is_real_aws_endpoint(None)
    assert is_real_aws_endpoint("https://states.eu-west-1.amazonaws.com")
    assert is_real_aws_endpoint("https://states.cn-north-1.amazonaws.com.cn")
    assert not is_real_aws_endpoint("http://localhost:5000")


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
