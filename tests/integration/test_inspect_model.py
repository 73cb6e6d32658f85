"""Pure parts of the inspector (no AWS) on the compiler's own output: the saga outcome read off
the compiled end states, compensation pairing by Payload, the graph layout, console links."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import saga_outbox.inspector as inspect_pkg
from examples.orders.workflows import ORDER_PROJECTION, ORDER_SAGA
from saga_outbox import Integration, RetryPolicy, Step, Workflow
from saga_outbox.inspector import (
    GraphEdge,
    InvalidDefinition,
    Outcome,
    StateGraph,
    build_report,
    console_execution_url,
    console_state_machine_url,
    is_real_aws_endpoint,
    parse_definition,
)
from saga_outbox.inspector.report import format_path
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


def _report(
    path: list[str],
    status: str,
    fails: set[str] = frozenset(),  # type: ignore[assignment]
    definition: Any = SAGA,
    **execution: Any,
):
    execution = {"executionArn": EX, "stateMachineArn": SM, "status": status, **execution}
    return build_report(execution, definition, _history(definition, path, fails=fails))


def _cause(state: str, error: str, cause: str) -> str:
    """CompensationFailed's cause as the compiler writes it: States.JsonToString($.failed)."""
    return json.dumps({state: {"Error": error, "Cause": cause}}, separators=(",", ":"))


def test_first_step_rejection_is_compensated_not_completed() -> None:
    path = [
        *("Start", "ReserveInventory", "ReserveInventoryFailed"),
        *("CancelOrder", "MarkCompensated", "SagaCompensated"),
    ]
    report = _report(path, "SUCCEEDED", {"ReserveInventory"})
    assert report.status == "SUCCEEDED"
    choice = report.state("ReserveInventoryFailed")
    assert (choice.type, choice.helper_of, choice.branch) == ("Choice", "ReserveInventory", "rejected")
    assert format_path(report) == (
        "Start -> ReserveInventory -> ReserveInventoryFailed (rejected) -> CancelOrder -> MarkCompensated"
        " -> SagaCompensated"
    )
    assert report.failures == ()
    assert report.saga_outcome == "compensated"
    assert report.compensations == ()  # nothing had taken effect: only the on_compensated hook ran
    assert report.outcomes["ReserveInventory"] == Outcome.FAILED
    assert report.outcomes["CancelOrder"] == Outcome.SUCCEEDED
    assert report.outcomes["ConfirmOrder"] == Outcome.NOT_REACHED


def test_full_compensation_pairs_each_undo_with_its_step_by_payload() -> None:
    path = [
        *("Start", "ReserveInventory", "ChargePayment", "CreateShipment", "CreateShipmentFailed"),
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
        *("Start", "ReserveInventory", "ChargePayment", "CreateShipment", "CreateShipmentFailed"),
        *("CompensateChargePayment", "CompensationFailed"),
    ]
    lambda_error = json.dumps({"errorMessage": "refund declined", "errorType": "RefundFailed"})
    cause = _cause("CompensateChargePayment", "Rejected.RefundFailed", lambda_error)
    report = _report(
        path, "FAILED", {"CreateShipment", "CompensateChargePayment"}, error="CompensationFailed", cause=cause
    )
    assert report.saga_outcome == "compensation_failed"
    assert report.outcomes["ChargePayment"] == Outcome.SUCCEEDED  # its undo failed: not compensated
    assert report.outcomes["CompensateChargePayment"] == Outcome.FAILED
    assert report.outcomes["CompensateReserveInventory"] == Outcome.NOT_REACHED
    (failure,) = report.failures
    assert (failure.state, failure.error, failure.cause) == (
        "CompensateChargePayment",
        "Rejected.RefundFailed",
        "refund declined",  # the Lambda error report's message, not its JSON
    )
    assert failure.summary == "CompensateChargePayment failed with Rejected.RefundFailed: refund declined"
    assert report.to_dict()["failures"][0]["summary"] == failure.summary
    assert report.cause == cause  # the raw cause stays as the service wrote it


def test_pivot_with_unknown_outcome_ends_unresolved() -> None:
    path = [
        *("Start", "ReserveInventory", "ChargePayment", "CreateShipment", "ConfirmOrder"),
        *("ConfirmOrderFailed", "ConfirmOrderUnresolved", "CompensationFailed"),
    ]
    cause = _cause("ConfirmOrder", "States.Timeout", "Task timed out after 40 seconds")
    report = _report(path, "FAILED", {"ConfirmOrder"}, error="CompensationFailed", cause=cause)
    assert report.saga_outcome == "compensation_failed"
    assert report.state("ConfirmOrderFailed").branch == "unknown"
    assert report.state("ConfirmOrderUnresolved").helper_of == "ConfirmOrder"
    assert report.state("ConfirmOrderUnresolved").branch is None  # a Pass decides nothing
    assert format_path(report).endswith(
        "ConfirmOrder -> ConfirmOrderFailed (unknown outcome) -> ConfirmOrderUnresolved -> CompensationFailed"
    )
    assert [f.summary for f in report.failures] == [
        "ConfirmOrder failed with States.Timeout: Task timed out after 40 seconds"
    ]
    # a cause that is not the compiler's JSON, or another error, names no failed state
    assert _report(path, "FAILED", error="CompensationFailed", cause="not json").failures == ()
    assert _report(path, "FAILED", error="States.Runtime", cause=cause).failures == ()


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


def _assert_no_overlaps(graph: StateGraph) -> None:
    boxes = [(n.x, n.y, n.x + n.width, n.y + n.height) for n in graph.nodes]
    for i, a in enumerate(boxes):  # no two nodes overlap, all inside the drawing
        assert a[0] >= 0 and a[2] <= graph.width and a[3] <= graph.height
        for b in boxes[i + 1 :]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


def _assert_no_shared_runs(graph: StateGraph) -> None:
    """No two edges that share neither end run along one horizontal line (they would read as one
    edge joining the wrong states)."""
    runs = []
    for edge in graph.edges:
        for (x1, y1), (x2, y2) in zip(edge.points, edge.points[1:], strict=False):
            if y1 == y2 and x1 != x2:
                runs.append((edge, y1, min(x1, x2), max(x1, x2)))
    for i, (a, ya, a1, a2) in enumerate(runs):
        for b, yb, b1, b2 in runs[i + 1 :]:
            if a.source == b.source or a.target == b.target:
                continue
            assert not (ya == yb and min(a2, b2) - max(a1, b1) > 0), (a.source, a.target, b.source, b.target)


def test_layout_keeps_every_edge_off_other_nodes() -> None:
    graph = parse_definition(SAGA)
    assert graph.saga
    column = {n.name: n.column for n in graph.nodes}
    assert {column[n] for n in ("Start", "ReserveInventory", "ConfirmOrder", "MarkCompleted")} == {0}
    helpers = {n.name: n for n in graph.nodes if n.helper_of}
    assert {name: (h.helper_of, h.shape) for name, h in helpers.items()} == {
        "ReserveInventoryFailed": ("ReserveInventory", "choice"),
        "ChargePaymentFailed": ("ChargePayment", "choice"),
        "CreateShipmentFailed": ("CreateShipment", "choice"),
        "ConfirmOrderFailed": ("ConfirmOrder", "choice"),
        "ConfirmOrderUnresolved": ("ConfirmOrder", "connector"),
    }
    assert {column[n] for n in helpers} == {1}
    for name, helper in helpers.items():  # a step's Choice in its own row, the pivot's Pass below it
        step = graph.node(helper.helper_of)  # type: ignore[arg-type]
        assert helper.layer == step.layer + (helper.shape == "connector"), name  # type: ignore[union-attr]
    chain = ("CompensateCreateShipment", "CompensateChargePayment", "CancelOrder", "MarkCompensated")
    assert {column[n] for n in chain} == {2}
    assert column["CompensationFailed"] == 3  # reached by one Catch edge or none: not counted
    _assert_no_overlaps(graph)
    _assert_routes_avoid_nodes(graph)
    _assert_no_shared_runs(graph)
    edges = {(e.source, e.target): e for e in graph.edges}
    assert edges[("ReserveInventory", "ReserveInventoryFailed")].kind == "catch"
    assert edges[("ReserveInventoryFailed", "CancelOrder")].branch == "rejected"
    assert edges[("ReserveInventoryFailed", "CompensateReserveInventory")].branch == "unknown"
    assert edges[("ConfirmOrderFailed", "ConfirmOrderUnresolved")].branch == "unknown"
    assert edges[("CompensateChargePayment", "CompensationFailed")].kind == "catch"
    assert edges[("ConfirmOrderUnresolved", "CompensationFailed")].kind == "next"


def test_layout_of_other_saga_shapes_follows_the_compiler() -> None:
    """A task-token step (its Choice defaults to rejected), a pivot step followed by a step that
    retries everything, no hooks: the same columns, and still no edge behind a node."""
    retry_all = RetryPolicy(errors=("States.ALL",), max_attempts=3)
    workflow = Workflow(
        name="Approval",
        steps=[
            Step(name="Hold", action="hold", compensation="release"),
            Step(
                name="Approve",
                action="approve",
                compensation="withdraw",
                integration=Integration.LAMBDA_WAIT_FOR_TASK_TOKEN,
            ),
            Step(name="Ship", action="ship"),
            Step(name="Notify", action="notify", retry=retry_all),
        ],
    )
    graph = parse_definition(compile_definition(workflow, function_arns={workflow.function: FUNCTION}))
    assert graph.saga
    column = {n.name: n.column for n in graph.nodes}
    assert {column[n] for n in ("Start", "Hold", "Approve", "Ship", "Notify", "MarkCompleted")} == {0}
    assert {n.name: n.helper_of for n in graph.nodes if n.helper_of} == {
        "HoldFailed": "Hold",
        "ApproveFailed": "Approve",
        "ShipFailed": "Ship",
        "ShipUnresolved": "Ship",
    }
    assert {column[n] for n in ("CompensateApprove", "CompensateHold", "MarkCompensated")} == {2}
    assert column["CompensationFailed"] == 3
    branches = {(e.source, e.target): e.branch for e in graph.edges if e.branch}
    assert branches[("ApproveFailed", "CompensateApprove")] == "unknown"
    assert branches[("ApproveFailed", "CompensateHold")] == "rejected"
    assert branches[("HoldFailed", "MarkCompensated")] == "rejected"  # nothing before it to undo
    _assert_no_overlaps(graph)
    _assert_routes_avoid_nodes(graph)
    _assert_no_shared_runs(graph)


def test_the_edge_check_catches_an_edge_through_a_node() -> None:
    """The route check above is no formality: a straight line from Start to CompensationFailed
    runs behind the happy path, and it says so."""
    graph = parse_definition(SAGA)
    start, failed = graph.node("Start"), graph.node("CompensationFailed")
    assert start is not None and failed is not None
    shortcut = GraphEdge(
        "Start", "CompensationFailed", "next", ((start.x + 10, start.y + 20), (start.x + 10, failed.y))
    )
    broken = dataclasses.replace(graph, edges=(*graph.edges, shortcut))
    with pytest.raises(AssertionError):
        _assert_routes_avoid_nodes(broken)


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
