"""Every Task outlasts the function it invokes: the steps Lambda's timeout and each Task's
TimeoutSeconds come from one derivation (saga_outbox.workflows.timeouts), so a slow step fails
as a Lambda timeout the saga treats as an unknown outcome, never as a race between two clocks."""

from __future__ import annotations

import json
from typing import Any

from examples.orders.app import app as orders_app
from saga_outbox.workflows.timeouts import function_timeout_seconds
from tests.infra.conftest import of_type


def _definition(resource: dict[str, Any]) -> dict[str, Any]:
    body = resource["Properties"]["DefinitionString"]
    if isinstance(body, dict):  # {"Fn::Join": ["", [...]]} with the function ARN spliced in
        body = "".join(part if isinstance(part, str) else "ARN" for part in body["Fn::Join"][1])
    return json.loads(body)


def test_steps_function_timeout_is_derived_and_every_task_waits_longer(template_json) -> None:
    expected = function_timeout_seconds(orders_app.workflows, function="steps")
    steps = [
        f
        for f in of_type(template_json, "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "saga_outbox.lambdas.handlers.steps.handler"
    ]
    assert [f["Properties"]["Timeout"] for f in steps] == [expected]
    machines = of_type(template_json, "AWS::StepFunctions::StateMachine")
    assert machines
    for machine in machines.values():
        tasks = [s for s in _definition(machine)["States"].values() if s.get("Type") == "Task"]
        assert tasks
        for task in tasks:
            if task["Resource"].endswith(".waitForTaskToken"):
                continue
            assert task["TimeoutSeconds"] > expected, task
