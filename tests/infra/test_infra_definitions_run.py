"""The state machine definitions *from the synthesized template* run in moto's Step Functions
interpreter, with every Task bridged to our real steps handler and a real PostgreSQL: the
happy path, a failure at each step (the right compensations, in reverse order), and a failing
compensation (CompensationFailed)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from examples.orders.app import create_app
from examples.orders.audit import audit_run
from examples.orders.commands import place_order
from saga_outbox.cdk.orchestration import placeholder
from saga_outbox.local.runtime import LocalOptions, LocalRuntime

pytestmark = pytest.mark.infra

SCENARIOS: dict[str, tuple[dict[str, bool], list[str], str]] = {
    "happy": ({}, ["ReserveInventory", "ChargePayment", "CreateShipment", "ConfirmOrder"], "SUCCEEDED"),
    "inventory fails": ({"fail_inventory": True}, ["ReserveInventory", "CancelOrder"], "SUCCEEDED"),
    "payment fails": (
        {"fail_payment": True},
        ["ReserveInventory", "ChargePayment", "CompensateReserveInventory", "CancelOrder"],
        "SUCCEEDED",
    ),
    "shipping fails": (
        {"fail_shipping": True},
        [
            "ReserveInventory",
            "ChargePayment",
            "CreateShipment",
            "CompensateChargePayment",
            "CompensateReserveInventory",
            "CancelOrder",
        ],
        "SUCCEEDED",
    ),
    "refund fails": (
        {"fail_shipping": True, "fail_refund": True},
        ["ReserveInventory", "ChargePayment", "CreateShipment", "CompensateChargePayment"],
        "FAILED",
    ),
}


def _template_definitions(resources: Any, function_arn: Any, workflows: Any) -> dict[str, str]:
    machines = {
        r["Properties"].get("StateMachineName", k): r["Properties"]
        for k, r in resources("AWS::StepFunctions::StateMachine").items()
    }
    out: dict[str, str] = {}
    for wf in workflows:
        [props] = [p for name, p in machines.items() if wf.name in name]
        text = props["DefinitionString"]
        out[wf.name] = text.replace("${" + placeholder(wf.function) + "}", function_arn(wf.function))
    return out


def _tasks_entered(sfn: Any, arn: str) -> list[str]:
    events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    return [e["stateEnteredEventDetails"]["name"] for e in events if e["type"] == "TaskStateEntered"]


def test_template_definitions_run_every_saga_path(resources, database_url, aws_env):
    app = create_app(schema="tpl_orders")
    probe = LocalRuntime(app, LocalOptions())
    definitions = _template_definitions(resources, probe.function_arn, app.workflows)
    assert json.loads(definitions["OrderSaga"])["StartAt"]
    runtime = LocalRuntime(
        app, LocalOptions(database_url=database_url, outbox_schema="tpl_outbox", definitions=definitions)
    )
    runtime.start()
    try:
        orders = {}
        for name, (simulate, _, _) in SCENARIOS.items():
            with runtime.engine.begin() as conn:  # type: ignore[union-attr]
                orders[name] = str(
                    place_order(
                        conn,
                        customer_id=name.replace(" ", "-"),
                        items=[{"sku": "s", "qty": 1}],
                        amount_cents=100,
                        simulate=simulate or None,
                        outbox_schema="tpl_outbox",
                        orders_schema="tpl_orders",
                    )
                )
        sfn = runtime.clients["stepfunctions"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            sagas = runtime.executions("OrderSaga")
            projections = runtime.executions("OrderProjection")
            if (
                len(sagas) == len(SCENARIOS)
                and all(e["status"] != "RUNNING" for e in sagas)
                and len(projections) >= 2 * len(SCENARIOS) - 1
                and all(e["status"] != "RUNNING" for e in projections)
            ):
                break
            time.sleep(0.3)
        by_order = {}
        for e in sagas:
            envelope = json.loads(sfn.describe_execution(executionArn=e["executionArn"])["input"])
            by_order[envelope["payload"]["order_id"]] = e
        for name, (_, tasks, status) in SCENARIOS.items():
            execution = by_order[orders[name]]
            assert execution["status"] == status, name
            assert _tasks_entered(sfn, execution["executionArn"]) == tasks, name
        refund = sfn.describe_execution(executionArn=by_order[orders["refund fails"]]["executionArn"])
        assert refund["error"] == "CompensationFailed"
        assert all(e["status"] == "SUCCEEDED" for e in projections)
        runtime.stop_workers()
        audit = audit_run(
            runtime.engine,
            sfn_client=sfn,
            state_machine_arns=runtime.state_machine_arns,  # type: ignore[arg-type]
            outbox_schema="tpl_outbox",
            orders_schema="tpl_orders",
        )
        assert audit.duplicate_side_effects == 0 and audit.events_lost == 0, audit.as_dict()
        assert audit.sagas_compensation_failed == 1 and audit.sagas_compensated == 3
    finally:
        runtime.stop()
