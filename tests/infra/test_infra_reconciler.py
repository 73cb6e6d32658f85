"""The scheduled reconciler in the synthesized templates: its schedule, its function (VPC,
database access, reservation 1), Step Functions permissions scoped to the Standard machines,
its alarms and dashboard row; a slower schedule and a custom namespace from the context; and
``reconciler=False``. (cdk-nag and cfn-lint over the same stacks: the zero-findings tests in
``test_infra_construct.py`` / ``test_infra_observability_checks.py``.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Environment, Stack
from aws_cdk.assertions import Template

from examples.orders.infra import FEATURE_FLAGS
from saga_outbox.cdk import SagaOutbox
from saga_outbox.ops._reconcile_findings import METRICS
from tests.infra.conftest import USER_APP_SPEC, of_type, tiny_app

pytestmark = pytest.mark.infra

HANDLER = "saga_outbox.lambdas.handlers.reconciler.handler"


def _reconciler(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    [(logical_id, fn)] = [
        (k, r)
        for k, r in of_type(template, "AWS::Lambda::Function").items()
        if r["Properties"].get("Handler") == HANDLER
    ]
    return logical_id, fn


def _statements(template: dict[str, Any], role_ref: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        s
        for p in of_type(template, "AWS::IAM::Policy").values()
        if role_ref in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]


def _alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        a["Properties"]["MetricName"]: a["Properties"]
        for a in of_type(template, "AWS::CloudWatch::Alarm").values()
        if {"Name": "service", "Value": "reconciler"} in a["Properties"].get("Dimensions", [])
        and a["Properties"].get("Statistic") == "Maximum"
    }


def test_the_reconciler_runs_every_five_minutes_in_the_vpc_one_at_a_time(template_json) -> None:
    logical_id, fn = _reconciler(template_json)
    props = fn["Properties"]
    assert props["ReservedConcurrentExecutions"] == 1
    assert props["VpcConfig"]["SubnetIds"] and props["VpcConfig"]["SecurityGroupIds"]
    env = props["Environment"]["Variables"]
    assert env["SAGA_OUTBOX_APP"] == "examples.orders.app:app"
    assert (env["RECONCILE_OLDER_THAN_MINUTES"], env["RECONCILE_SINCE_HOURS"]) == ("15", "24")
    assert {"DATABASE_SECRET_ARN", "DATABASE_PROXY_ENDPOINT", "DATABASE_NAME", "STATE_MACHINE_ARNS"} <= set(
        env
    )
    assert props["Timeout"] == 300
    [rule] = [
        r
        for r in of_type(template_json, "AWS::Events::Rule").values()
        if r["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [logical_id, "Arn"]}
    ]
    assert rule["Properties"]["ScheduleExpression"] == "rate(5 minutes)"
    assert rule["Properties"]["Targets"][0]["RetryPolicy"]["MaximumRetryAttempts"] == 0
    [invoke] = [
        c["Properties"]
        for c in of_type(template_json, "AWS::Lambda::EventInvokeConfig").values()
        if c["Properties"]["FunctionName"] == {"Ref": logical_id}
    ]
    # a pass throttled behind a running one is dropped, not queued for hours
    assert invoke["MaximumRetryAttempts"] == 0 and invoke["MaximumEventAgeInSeconds"] == 300


def test_step_functions_permissions_cover_the_standard_machines_only(template_json) -> None:
    _, fn = _reconciler(template_json)
    machines = {
        r["Properties"]["StateMachineName"]: k
        for k, r in of_type(template_json, "AWS::StepFunctions::StateMachine").items()
    }
    saga, projection = machines["SagaOutbox-dev-OrderSaga"], machines["SagaOutbox-dev-OrderProjection"]
    role = {"Ref": fn["Properties"]["Role"]["Fn::GetAtt"][0]}
    states = [
        s for s in _statements(template_json, role) if any(a.startswith("states:") for a in s["Action"])
    ]
    by_actions = {tuple(sorted(s["Action"])): s["Resource"] for s in states}
    assert by_actions[("states:DescribeStateMachine", "states:ListExecutions", "states:StartExecution")] == {
        "Ref": saga
    }
    executions = by_actions[
        ("states:DescribeExecution", "states:DescribeStateMachineForExecution", "states:GetExecutionHistory")
    ]
    assert executions["Fn::Join"][1][-1] == ":execution:SagaOutbox-dev-OrderSaga:*"
    assert len(by_actions) == 2
    text = json.dumps(states)
    assert projection not in text and "OrderProjection" not in text  # Express: never called
    assert '"*"' not in text
    # the database through the proxy, as every database function
    assert any("rds-db:connect" in json.dumps(s["Action"]) for s in _statements(template_json, role))


def test_alarms_on_repairs_stuck_compensation_failed_errors_and_silence(template_json) -> None:
    logical_id, _ = _reconciler(template_json)
    alarms = _alarms(template_json)
    for kind in ("started", "start_failures", "stuck", "compensation_failed"):
        alarm = alarms[METRICS[kind]]
        assert alarm["Namespace"] == "SagaOutbox" and alarm["Period"] == 300
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
        assert alarm["AlarmActions"]
    every = list(of_type(template_json, "AWS::CloudWatch::Alarm").values())
    [silent] = [a["Properties"] for a in every if a["Properties"].get("Statistic") == "SampleCount"]
    assert silent["MetricName"] == METRICS["lost_dispatches"]
    assert (silent["ComparisonOperator"], silent["TreatMissingData"]) == ("LessThanThreshold", "breaching")
    assert silent["EvaluationPeriods"] == 3
    errors = [
        a["Properties"]
        for a in every
        if a["Properties"].get("MetricName") == "Errors"
        and {"Name": "FunctionName", "Value": {"Ref": logical_id}} in a["Properties"]["Dimensions"]
    ]
    assert len(errors) == 1 and errors[0]["AlarmActions"]


def test_dashboard_graphs_every_finding(template_json) -> None:
    [dashboard] = of_type(template_json, "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    assert "Reconciler findings per run" in body
    for name in METRICS.values():
        assert name in body


def test_schedule_and_namespace_follow_the_context(variant) -> None:
    template = variant.template()
    logical_id, fn = _reconciler(template)
    assert fn["Properties"]["Timeout"] == 900  # 15 minutes, Lambda's ceiling
    [rule] = [
        r
        for r in of_type(template, "AWS::Events::Rule").values()
        if r["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [logical_id, "Arn"]}
    ]
    assert rule["Properties"]["ScheduleExpression"] == "rate(15 minutes)"
    alarm = _alarms(template)[METRICS["stuck"]]
    assert (alarm["Namespace"], alarm["Period"]) == ("Shop/Sagas", 900)


def test_the_user_stack_has_the_reconciler(user_synth) -> None:
    """The user stack the zero-findings test checks holds the reconciler too."""
    _, fn = _reconciler(user_synth.template())
    assert fn["Properties"]["Environment"]["Variables"]["SAGA_OUTBOX_APP"] == USER_APP_SPEC


def test_reconciler_false_turns_it_off(user_source: Path) -> None:
    app = App(context={**FEATURE_FLAGS, "aws:cdk:bundling-stacks": []})
    stack = Stack(app, "NoRecon", env=Environment(region="eu-west-1"))
    sagas = SagaOutbox(
        stack, "Sagas", app=tiny_app(), app_spec=USER_APP_SPEC, source_dir=user_source, reconciler=False
    )
    assert sagas.reconciler is None
    template = Template.from_stack(stack).to_json()
    handlers = {r["Properties"].get("Handler") for r in of_type(template, "AWS::Lambda::Function").values()}
    assert HANDLER not in handlers
    assert not any(
        "Reconcile" in a["Properties"].get("MetricName", "")
        for a in of_type(template, "AWS::CloudWatch::Alarm").values()
    )
    steps = next(
        r["Properties"]
        for r in of_type(template, "AWS::Lambda::Function").values()
        if r["Properties"].get("Handler") == "saga_outbox.lambdas.handlers.steps.handler"
    )
    assert steps["ReservedConcurrentExecutions"] == 29  # its connections go back to the steps


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"reconcile_every_minutes": 0}, "reconcile_every_minutes"),
        ({"reconcile_older_than_minutes": 60, "reconcile_since_hours": 1}, "reconcile_older_than_minutes"),
    ],
)
def test_bad_reconciler_options_name_themselves(options: dict[str, Any], message: str) -> None:
    from saga_outbox.cdk.config import DeploymentConfig

    with pytest.raises(ValueError, match=message):
        DeploymentConfig(**options)


def test_the_alarms_watch_the_dimension_the_handler_emits() -> None:
    from saga_outbox.cdk.reconciler import RECONCILER_METRICS_SERVICE
    from saga_outbox.lambdas.handlers.reconciler import SERVICE

    assert SERVICE == RECONCILER_METRICS_SERVICE
