"""``SagaOutbox`` in a user's own stack: defaults, relay="fargate", bring-your-own resources with
relay="none", accessors, the code asset and the layer, and the zero-findings gates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_sqs as sqs

from saga_outbox.cdk import SagaOutbox
from saga_outbox.cdk.checks import run_cfn_lint
from tests.infra.conftest import USER_APP_SPEC, of_type, tiny_app

pytestmark = pytest.mark.infra

STEPS = "saga_outbox.lambdas.handlers.steps.handler"
DISPATCHER = "saga_outbox.lambdas.handlers.dispatcher.handler"
RELAY = "saga_outbox.lambdas.handlers.relay.handler"
RECONCILER = "saga_outbox.lambdas.handlers.reconciler.handler"


def _functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{handler: properties}`` of the construct's functions (not CDK's own providers)."""
    return {
        r["Properties"]["Handler"]: r["Properties"]
        for r in of_type(template, "AWS::Lambda::Function").values()
        if r["Properties"].get("Handler", "").startswith("saga_outbox.")
    }


def test_defaults_create_the_whole_runtime_for_the_users_app(user_synth) -> None:
    template = user_synth.template()
    functions = _functions(template)
    assert set(functions) == {STEPS, DISPATCHER, RELAY, RECONCILER}
    for handler in (STEPS, DISPATCHER):
        assert functions[handler]["Environment"]["Variables"]["SAGA_OUTBOX_APP"] == USER_APP_SPEC
    [machine] = of_type(template, "AWS::StepFunctions::StateMachine").values()
    assert machine["Properties"]["StateMachineName"] == "Shop-RoomSaga"
    assert "BookRoom" in json.loads(machine["Properties"]["DefinitionString"])["States"]
    queues = of_type(template, "AWS::SQS::Queue").values()
    assert len(queues) == 2 and all(q["Properties"]["FifoQueue"] for q in queues)
    assert len(of_type(template, "AWS::DynamoDB::GlobalTable")) == 1
    assert len(of_type(template, "AWS::RDS::DBProxy")) == 1
    assert len(of_type(template, "AWS::Events::Rule")) == 2  # the relay's and the reconciler's
    assert len(of_type(template, "AWS::CloudWatch::Dashboard")) == 1
    assert any(
        a["Properties"].get("MetricName") == "OldestPendingAgeSeconds"
        for a in of_type(template, "AWS::CloudWatch::Alarm").values()
    )


def test_user_stack_cdk_nag_and_cfn_lint_zero_findings(user_synth, fargate_synth) -> None:
    for synth in (user_synth, fargate_synth):
        assert [str(f) for f in synth.nag_findings] == []
        assert run_cfn_lint(synth.templates, regions=["eu-west-1"]) == []


def _asset(synth, code: dict[str, Any]) -> Path:
    key = code["S3Key"]["Fn::Sub"] if isinstance(code["S3Key"], dict) else code["S3Key"]
    return synth.outdir / f"asset.{key.split('.')[0]}"


def test_code_asset_is_the_users_source_dir_and_the_layer_holds_saga_outbox(user_synth) -> None:
    template = user_synth.template()
    functions = _functions(template)
    [code] = {json.dumps(p["Code"], sort_keys=True) for p in functions.values()}
    code_dir = _asset(user_synth, json.loads(code))
    # the user's package, without .venv, cdk.out, tests, .git or __pycache__
    assert sorted(str(p.relative_to(code_dir)) for p in code_dir.rglob("*")) == [
        "myshop",
        "myshop/__init__.py",
        "myshop/sagas.py",
    ]
    layers = {
        k: r["Properties"]
        for k, r in of_type(template, "AWS::Lambda::LayerVersion").items()
        if r["Properties"]["Description"].startswith("saga-outbox runtime")
    }
    [(layer_id, layer)] = layers.items()
    site = _asset(user_synth, layer["Content"]) / "python"
    assert (site / "saga_outbox" / "lambdas" / "handlers" / "steps.py").is_file()
    assert (site / "outbox_relay" / "relay.py").is_file()
    assert not (site / "saga_outbox" / "cdk").exists()
    assert all({"Ref": layer_id} in p["Layers"] for p in functions.values())


def test_fargate_relay_listens_on_the_cluster_endpoint_not_the_proxy(fargate_synth) -> None:
    template = fargate_synth.template()
    assert RELAY not in _functions(template)
    # no relay schedule; the only rule left is the reconciler's
    rules = of_type(template, "AWS::Events::Rule")
    assert [k for k in rules if "Reconciler" not in k] == []
    [cluster_id] = of_type(template, "AWS::RDS::DBCluster")
    [task] = of_type(template, "AWS::ECS::TaskDefinition").values()
    [container] = task["Properties"]["ContainerDefinitions"]
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert env["DATABASE_HOST"] == {"Fn::GetAtt": [cluster_id, "Endpoint.Address"]}
    assert env["DATABASE_PORT"] == {"Fn::GetAtt": [cluster_id, "Endpoint.Port"]}
    assert "proxy" not in json.dumps(env).lower()
    # credentials come from Secrets Manager through ECS, never as plain environment
    assert {s["Name"] for s in container["Secrets"]} == {"DATABASE_USER", "DATABASE_PASSWORD"}
    assert not {"DATABASE_PASSWORD", "DATABASE_URL"} & set(env)
    assert task["Properties"]["RuntimePlatform"]["CpuArchitecture"] == "ARM64"
    # the cluster admits the relay's tasks directly (it admits only the proxy otherwise)
    [service] = of_type(template, "AWS::ECS::Service").values()
    [task_sg] = service["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]["SecurityGroups"]
    ingress = [
        r["Properties"]
        for r in of_type(template, "AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"].get("SourceSecurityGroupId") == task_sg
    ]
    assert [(i["FromPort"], i["ToPort"]) for i in ingress] == [(5432, 5432)]
    assert "ClusterSg" in ingress[0]["GroupId"]["Fn::GetAtt"][0]


def test_fargate_relay_scales_on_oldest_pending_age(fargate_synth) -> None:
    template = fargate_synth.template()
    [target] = of_type(template, "AWS::ApplicationAutoScaling::ScalableTarget").values()
    assert (target["Properties"]["MinCapacity"], target["Properties"]["MaxCapacity"]) == (1, 4)
    policies = of_type(template, "AWS::ApplicationAutoScaling::ScalingPolicy")
    assert {p["Properties"]["PolicyType"] for p in policies.values()} == {"StepScaling"}
    scaling_alarms = [
        a["Properties"]
        for a in of_type(template, "AWS::CloudWatch::Alarm").values()
        if any(
            isinstance(x, dict) and x.get("Ref") in policies for x in a["Properties"].get("AlarmActions", [])
        )
    ]
    assert len(scaling_alarms) == 2  # scale out / scale in
    for alarm in scaling_alarms:
        assert alarm["MetricName"] == "OldestPendingAgeSeconds"
        assert alarm["Dimensions"] == [{"Name": "service", "Value": "relay"}]
    assert sorted(a["Threshold"] for a in scaling_alarms) == [10, 30]


def test_relay_none_and_bring_your_own_resources(byo) -> None:
    _stack, sagas, template = byo
    functions = _functions(template)
    assert set(functions) == {STEPS, DISPATCHER, RECONCILER}  # the app embeds the relay
    # the reconciler reaches their database as the steps do
    assert functions[RECONCILER]["VpcConfig"] == functions[STEPS]["VpcConfig"]
    assert sagas.relay_function is None and sagas.relay_service is None
    # nothing of ours where the user brought theirs
    assert len(of_type(template, "AWS::EC2::VPC")) == 1  # theirs
    for cfn_type in ("AWS::RDS::DBCluster", "AWS::RDS::DBProxy", "AWS::EC2::FlowLog"):
        assert not of_type(template, cfn_type), cfn_type
    assert len(of_type(template, "AWS::SQS::Queue")) == 1
    [queue_id] = of_type(template, "AWS::SQS::Queue")
    [mapping] = of_type(template, "AWS::Lambda::EventSourceMapping").values()
    assert mapping["Properties"]["EventSourceArn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    [topic_id] = of_type(template, "AWS::SNS::Topic")
    assert "TheirTopic" in topic_id
    for alarm in of_type(template, "AWS::CloudWatch::Alarm").values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]
    steps = functions[STEPS]
    assert steps["Environment"]["Variables"]["DATABASE_PROXY_ENDPOINT"] == (
        "their-proxy.proxy-abc.eu-west-1.rds.amazonaws.com"
    )
    assert steps["Environment"]["Variables"]["DATABASE_NAME"] == "shop"
    sg_refs = json.dumps(steps["VpcConfig"]["SecurityGroupIds"])
    assert "TheirClientSg" in sg_refs
    subnets = json.dumps(steps["VpcConfig"]["SubnetIds"])
    assert "TheirVpcPrivateSubnet" in subnets


def test_accessors_name_what_the_construct_created(byo) -> None:
    _stack, sagas, _ = byo
    assert set(sagas.all_functions) == {"steps", "dispatcher", "reconciler"}
    assert sagas.steps_function is sagas.all_functions["steps"]
    assert sagas.dispatcher_function is sagas.all_functions["dispatcher"]
    assert set(sagas.state_machines) == {"RoomSaga"}
    assert sagas.state_machine("RoomSaga") is sagas.state_machines["RoomSaga"]
    with pytest.raises(KeyError, match="RoomSaga"):
        sagas.state_machine("Nope")
    assert sagas.queue.node.id == "TheirQueue"
    assert sagas.dead_letter_queue is None  # their queue has no DLQ configured
    assert sagas.alarm_topic.node.id == "TheirTopic"
    assert sagas.idempotency_table is sagas.idempotency.table
    assert sagas.vpc.node.id == "TheirVpc"
    assert set(sagas.database_environment) == {
        "DATABASE_SECRET_ARN",
        "DATABASE_PROXY_ENDPOINT",
        "DATABASE_NAME",
    }


def test_add_function_joins_the_vpc_and_gets_database_access(user_source) -> None:
    app = App(context={"aws:cdk:bundling-stacks": []})
    stack = Stack(app, "Api")
    sagas = SagaOutbox(stack, "Sagas", app=tiny_app(), app_spec=USER_APP_SPEC, source_dir=user_source)
    fn = sagas.add_function("Api", "api", handler="myshop.api.handler")
    assert sagas.all_functions["api"] is fn
    with pytest.raises(ValueError, match="already exists"):
        sagas.add_function("Api2", "api", handler="myshop.api.handler")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"app": tiny_app()}, ValueError, "app_spec"),
        ({"app": "myshop.sagas:app", "colour": "red"}, TypeError, "colour"),
        ({"app": "myshop.sagas:app", "relay": "cron"}, ValueError, "relay"),
        ({"app": "myshop.sagas:app", "connection_budget": 5}, ValueError, "connection_budget"),
        ({"app": tiny_app(), "app_spec": "elsewhere.sagas:app"}, ValueError, "not in source_dir"),
    ],
)
def test_options_are_validated(user_source, kwargs, error, message) -> None:
    stack = Stack(App(context={"aws:cdk:bundling-stacks": []}), "Bad")
    with pytest.raises(error, match=message):
        SagaOutbox(stack, "Sagas", source_dir=user_source, **kwargs)


def test_app_string_is_imported_from_source_dir(user_source) -> None:
    stack = Stack(App(context={"aws:cdk:bundling-stacks": []}), "ByName")
    sagas = SagaOutbox(stack, "Sagas", app=USER_APP_SPEC, source_dir=user_source)
    assert sagas.app_spec == USER_APP_SPEC and set(sagas.state_machines) == {"RoomSaga"}


def test_a_standard_queue_is_refused(user_source) -> None:
    stack = Stack(App(context={"aws:cdk:bundling-stacks": []}), "Std")
    with pytest.raises(ValueError, match="FIFO"):
        SagaOutbox(
            stack,
            "Sagas",
            app=tiny_app(),
            app_spec=USER_APP_SPEC,
            source_dir=user_source,
            queue=sqs.Queue(stack, "Standard"),
        )
