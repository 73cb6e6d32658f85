"""State machines (one source of truth with ``workflows``) and the Lambda functions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Match, Template

from examples.orders.app import app as orders_app
from saga_outbox.cdk.orchestration import placeholder
from saga_outbox.workflows import WorkflowKind, compile_definition, function_timeout_seconds

pytestmark = pytest.mark.infra

HANDLERS = {
    "examples.orders.handler.handler": {
        "DATABASE_PROXY_ENDPOINT",
        "DATABASE_SECRET_ARN",
        "DATABASE_NAME",
    },
    "saga_outbox.lambdas.handlers.relay.handler": {
        "DATABASE_PROXY_ENDPOINT",
        "QUEUE_URL",
        "RELAY_MAX_SECONDS",
    },
    "saga_outbox.lambdas.handlers.steps.handler": {"DATABASE_PROXY_ENDPOINT", "IDEMPOTENCY_TABLE"},
    "saga_outbox.lambdas.handlers.dispatcher.handler": {"STATE_MACHINE_ARNS"},
}
COMMON_ENV = {"OUTBOX_SCHEMA", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"}


def all_workflows():
    return orders_app.workflows


def _state_machines(resources) -> dict[str, dict]:
    by_name = {}
    for r in resources("AWS::StepFunctions::StateMachine").values():
        name = r["Properties"]["StateMachineName"].removeprefix("SagaOutbox-dev-")
        by_name[name] = r["Properties"]
    return by_name


def test_one_state_machine_per_workflow_with_its_type(resources) -> None:
    machines = _state_machines(resources)
    expected = {w.name: w.kind for w in all_workflows()}
    assert set(machines) == set(expected)
    assert {"OrderSaga", "OrderProjection"} <= set(machines)
    for name, kind in expected.items():
        assert machines[name]["StateMachineType"] == str(kind.value)
    assert {m["StateMachineType"] for m in machines.values()} == {"STANDARD", "EXPRESS"}
    assert expected["OrderSaga"] is WorkflowKind.STANDARD


def test_state_machines_log_all_and_trace(resources) -> None:
    for props in _state_machines(resources).values():
        assert props["LoggingConfiguration"]["Level"] == "ALL"
        assert props["LoggingConfiguration"]["IncludeExecutionData"] is True
        assert props["TracingConfiguration"] == {"Enabled": True}


def test_deployed_definitions_are_the_compiled_ones(resources) -> None:
    """One source of truth: the template's ASL is compile_definition()'s output, with the Lambda
    ARN left as a ${...} placeholder that CloudFormation substitutes with the steps function."""
    machines = _state_machines(resources)
    steps_fn = next(
        k
        for k, r in resources("AWS::Lambda::Function").items()
        if r["Properties"].get("Handler") == "saga_outbox.lambdas.handlers.steps.handler"
    )
    for workflow in all_workflows():
        var = placeholder(workflow.function)
        props = machines[workflow.name]
        # the function's deployed timeout, derived across the app's workflows (workflows.timeouts)
        timeout = function_timeout_seconds(orders_app.workflows, function=workflow.function)
        compiled = compile_definition(
            workflow,
            function_arns={workflow.function: "${" + var + "}"},
            function_timeouts={workflow.function: timeout},
        )
        assert json.loads(props["DefinitionString"]) == compiled
        assert props["DefinitionSubstitutions"] == {var: {"Fn::GetAtt": [steps_fn, "Arn"]}}
        # and the substituted value is what every Task invokes
        tasks = [s for s in compiled["States"].values() if s.get("Type") == "Task"]
        assert tasks
        assert all(t["Parameters"]["FunctionName"] == "${" + var + "}" for t in tasks)


def test_state_machine_roles_invoke_only_the_steps_function(resources) -> None:
    statements = [
        s
        for p in resources("AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if "lambda:InvokeFunction" in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    ]
    assert statements
    for s in statements:
        resources_ = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
        assert all(isinstance(r, dict) and "Fn::GetAtt" in r for r in resources_), s


def _latest_python() -> str:
    names = [n for n in dir(lambda_.Runtime) if n.startswith("PYTHON_3_")]
    latest = max(names, key=lambda n: int(n.removeprefix("PYTHON_3_")))
    return getattr(lambda_.Runtime, latest).name


def test_functions_use_latest_python_arm64_xray_and_handlers(resources) -> None:
    ours = {
        r["Properties"]["Handler"]: r["Properties"]
        for r in resources("AWS::Lambda::Function").values()
        if r["Properties"].get("Handler", "") in HANDLERS
    }
    assert set(ours) == set(HANDLERS)
    latest = _latest_python()
    for handler, props in ours.items():
        assert props["Runtime"] == latest == "python3.14", handler
        assert props["Architectures"] == ["arm64"]
        assert props["TracingConfig"] == {"Mode": "Active"}
        env = set(props["Environment"]["Variables"])
        assert COMMON_ENV | HANDLERS[handler] <= env, handler
        assert any("AWSLambdaPowertoolsPythonV3-python314-arm64" in str(layer) for layer in props["Layers"])
        assert len(props["Layers"]) == 3, handler  # Powertools, dependencies, saga-outbox
    in_vpc = {h for h, p in ours.items() if "VpcConfig" in p}
    assert in_vpc == set(HANDLERS) - {"saga_outbox.lambdas.handlers.dispatcher.handler"}
    assert ours["saga_outbox.lambdas.handlers.relay.handler"]["ReservedConcurrentExecutions"] == 1
    assert (
        ours["saga_outbox.lambdas.handlers.relay.handler"]["Environment"]["Variables"]["RELAY_MAX_SECONDS"]
        == "50"
    )
    for generic in ("steps", "dispatcher"):
        env = ours[f"saga_outbox.lambdas.handlers.{generic}.handler"]["Environment"]["Variables"]
        assert env["SAGA_OUTBOX_APP"] == "examples.orders.app:app"


def test_reserved_concurrency_fits_the_connection_budget(resources) -> None:
    """Defaults: budget 100, 10 for the app's own functions, relay 1 x 3 connections, reconciler
    1 x 3 -> steps (100 - 10 - 3 - 3) // 3 = 28, dispatcher max(2, 28 // 10) = 2 (= the event
    source's cap)."""
    by_handler = {
        r["Properties"].get("Handler"): r["Properties"] for r in resources("AWS::Lambda::Function").values()
    }
    assert by_handler["saga_outbox.lambdas.handlers.steps.handler"]["ReservedConcurrentExecutions"] == 28
    assert by_handler["saga_outbox.lambdas.handlers.dispatcher.handler"]["ReservedConcurrentExecutions"] == 2
    [mapping] = resources("AWS::Lambda::EventSourceMapping").values()
    assert mapping["Properties"]["ScalingConfig"] == {"MaximumConcurrency": 2}
    assert "ReservedConcurrentExecutions" not in by_handler["examples.orders.handler.handler"]


def test_dispatcher_sqs_source_batch_10_with_partial_failures(template: Template) -> None:
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {"BatchSize": 10, "FunctionResponseTypes": ["ReportBatchItemFailures"]},
    )


def test_relay_runs_on_a_schedule(template: Template, variant) -> None:
    template.has_resource_properties("AWS::Events::Rule", {"ScheduleExpression": "rate(1 minute)"})
    variant_rules = [
        r
        for k, r in variant.template()["Resources"].items()
        if r["Type"] == "AWS::Events::Rule" and "Reconciler" not in k  # its own test: test_infra_reconciler
    ]
    assert [r["Properties"]["ScheduleExpression"] for r in variant_rules] == ["rate(5 minutes)"]


def test_command_api_function_url_requires_iam(template: Template) -> None:
    template.has_resource_properties("AWS::Lambda::Url", {"AuthType": "AWS_IAM"})


def _asset_dir(synth, code: dict) -> Path:
    key = code["S3Key"]["Fn::Sub"] if isinstance(code["S3Key"], dict) else code["S3Key"]
    return synth.outdir / f"asset.{key.split('.')[0]}"


def test_code_asset_is_the_example_and_the_layer_holds_saga_outbox(synth, resources) -> None:
    """The functions' code is the example's source_dir (only examples/); saga-outbox itself comes
    from a layer in the import layout under python/ (no CDK or local runtime; ops and inspector
    for the reconciler)."""
    codes = {
        json.dumps(r["Properties"]["Code"], sort_keys=True)
        for r in resources("AWS::Lambda::Function").values()
        if r["Properties"].get("Handler") in HANDLERS
    }
    assert len(codes) == 1  # one upload shared by every function
    code_dir = _asset_dir(synth, json.loads(codes.pop()))
    assert {p.name for p in code_dir.iterdir()} == {"examples"}
    assert (code_dir / "examples" / "orders" / "app.py").is_file()

    layers = [r["Properties"] for r in resources("AWS::Lambda::LayerVersion").values()]
    [runtime] = [p for p in layers if p["Description"].startswith("saga-outbox runtime")]
    layer_dir = _asset_dir(synth, runtime["Content"])
    assert {p.name for p in layer_dir.iterdir()} == {"python"}
    site = layer_dir / "python"
    assert {p.name for p in site.iterdir()} == {"outbox_relay", "saga_outbox"}
    packages = {p.name for p in (site / "saga_outbox").iterdir() if p.is_dir()}
    assert packages == {"workflows", "lambdas", "ops", "inspector"}  # ops + inspector: the reconciler
    assert (site / "saga_outbox" / "_app.py").is_file()
    assert (site / "saga_outbox" / "lambdas" / "handlers" / "steps.py").is_file()
    assert not list(layer_dir.rglob("__pycache__")) and not list(code_dir.rglob("__pycache__"))


def test_no_aws_managed_policies_on_our_roles(resources) -> None:
    for logical_id, role in resources("AWS::IAM::Role").items():
        if logical_id.startswith("CustomVpcRestrictDefaultSG"):
            continue  # CDK's own custom-resource provider
        assert "ManagedPolicyArns" not in role["Properties"], logical_id


# Actions that only accept Resource "*" (no resource-level permissions), each acknowledged in cdk/.
WILDCARD_ONLY_ACTIONS = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
    # the Fargate relay: metrics (namespace-conditioned) and image pull
    "cloudwatch:PutMetricData",
    "ecr:GetAuthorizationToken",
}


def test_iam_wildcards_only_where_aws_allows_nothing_else(resources) -> None:
    for logical_id, policy in resources("AWS::IAM::Policy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert not any("*" in a for a in actions), (logical_id, actions)
            if statement["Resource"] == "*":
                assert set(actions) <= WILDCARD_ONLY_ACTIONS, (logical_id, actions)


def test_no_hand_written_asl_in_cdk_package() -> None:
    import pathlib

    cdk_dir = pathlib.Path(__file__).resolve().parents[2] / "cdk"
    for path in cdk_dir.glob("*.py"):
        text = path.read_text()
        assert '"StartAt"' not in text and "'StartAt'" not in text, path


def test_template_match_helpers_smoke(template: Template) -> None:
    template.has_resource_properties(
        "AWS::Lambda::LayerVersion", {"CompatibleRuntimes": Match.array_with(["python3.14"])}
    )
