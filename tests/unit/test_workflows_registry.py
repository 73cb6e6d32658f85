from __future__ import annotations

import json

import pytest

import saga_outbox.workflows
from saga_outbox.workflows import (
    EventRoute,
    UnknownWorkflowError,
    WorkflowKind,
    WorkflowValidationError,
    all_workflows,
    default_routes,
    get_workflow,
    workflows_for_event,
)
from saga_outbox.workflows.cli import main


def test_public_api_is_pinned() -> None:
    assert sorted(saga_outbox.workflows.__all__) == [
        "CompilationError",
        "EventRoute",
        "Integration",
        "RetryPolicy",
        "Step",
        "UnknownWorkflowError",
        "Workflow",
        "WorkflowError",
        "WorkflowKind",
        "WorkflowValidationError",
        "all_workflows",
        "compile_definition",
        "default_routes",
        "execution_name",
        "get_workflow",
        "to_json",
        "workflows_for_event",
    ]
    for name in saga_outbox.workflows.__all__:
        assert getattr(saga_outbox.workflows, name) is not None


def test_registered_workflows() -> None:
    saga, projection = all_workflows()
    assert (saga.name, saga.kind) == ("OrderSaga", WorkflowKind.STANDARD)
    assert [(s.name, s.action, s.compensation) for s in saga.steps] == [
        ("ReserveInventory", "reserve_inventory", "release_inventory"),
        ("ChargePayment", "charge_payment", "refund_payment"),
        ("CreateShipment", "create_shipment", None),
    ]
    assert saga.on_success is not None and saga.on_success.action == "confirm_order"
    assert saga.on_compensated is not None and saga.on_compensated.action == "cancel_order"
    assert (projection.name, projection.kind) == ("OrderProjection", WorkflowKind.EXPRESS)
    assert [s.action for s in projection.steps] == ["project_order", "record_notification"]
    assert get_workflow("OrderSaga") is saga


def test_unknown_workflow() -> None:
    with pytest.raises(UnknownWorkflowError, match=r"'Nope'.*OrderSaga"):
        get_workflow("Nope")
    with pytest.raises(LookupError):
        get_workflow("Nope")


def test_default_routes_fan_out() -> None:
    assert [w.name for w in workflows_for_event("OrderPlaced")] == ["OrderSaga", "OrderProjection"]
    assert [w.name for w in workflows_for_event("OrderConfirmed")] == ["OrderProjection"]
    assert [w.name for w in workflows_for_event("OrderCancelled")] == ["OrderProjection"]
    assert workflows_for_event("SomethingElse") == []
    assert EventRoute(event_type="OrderPlaced", workflow="OrderSaga") in default_routes()


def test_custom_routes_are_deduplicated_and_checked() -> None:
    routes = [EventRoute(event_type="X", workflow="OrderSaga")] * 2
    assert [w.name for w in workflows_for_event("X", routes)] == ["OrderSaga"]
    with pytest.raises(UnknownWorkflowError):
        workflows_for_event("X", [EventRoute(event_type="X", workflow="Missing")])
    with pytest.raises(WorkflowValidationError, match="event_type ''"):
        EventRoute(event_type="", workflow="OrderSaga")


def test_cli_list_and_asl(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["workflows", "list"]) == 0
    out = capsys.readouterr().out
    assert "OrderSaga" in out and "OrderProjection" in out
    assert main(["workflows", "asl", "OrderSaga"]) == 0
    asl = json.loads(capsys.readouterr().out)
    fn = asl["States"]["ReserveInventory"]["Parameters"]["FunctionName"]
    assert fn == "arn:aws:lambda:us-east-1:000000000000:function:steps"
    assert main(["workflows", "asl", "OrderSaga", "--function-arn", "arn:x"]) == 0
    assert '"arn:x"' in capsys.readouterr().out
    assert main(["workflows", "asl", "Nope"]) == 2
    assert "unknown workflow" in capsys.readouterr().err
