"""Alarms, dashboard, outputs, and the zero-findings gates (cdk-nag, cfn-lint)."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match, Template

from saga_outbox.cdk.checks import run_cfn_lint
from saga_outbox.cdk.config import DeploymentConfig

pytestmark = pytest.mark.infra


def _alarm_metrics(resources) -> list[tuple[str, str]]:
    return [
        (a["Properties"].get("Namespace", ""), a["Properties"].get("MetricName", ""))
        for a in resources("AWS::CloudWatch::Alarm").values()
    ]


def test_alarms_cover_outbox_dlq_workflows_compensation_and_throttles(resources) -> None:
    metrics = _alarm_metrics(resources)
    assert ("SagaOutbox", "OldestPendingAgeSeconds") in metrics
    assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible") in metrics
    assert metrics.count(("AWS/States", "ExecutionsFailed")) == 2
    assert metrics.count(("AWS/States", "ExecutionThrottled")) == 2
    assert ("SagaOutbox", "CompensationFailed") in metrics
    assert metrics.count(("AWS/Lambda", "Throttles")) == 5  # relay, steps, dispatcher, api, reconciler
    assert metrics.count(("AWS/Lambda", "Errors")) == 5
    for alarm in resources("AWS::CloudWatch::Alarm").values():
        assert alarm["Properties"]["AlarmActions"], "every alarm notifies the topic"


def test_oldest_pending_alarm_uses_the_relay_dimension(template: Template) -> None:
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": "OldestPendingAgeSeconds",
            "Namespace": "SagaOutbox",
            "Dimensions": [{"Name": "service", "Value": "relay"}],
            "Threshold": 240,
        },
    )


def test_dlq_alarm_fires_on_any_message(template: Template) -> None:
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 0,
        },
    )


def test_compensation_failed_metric_filter_on_the_standard_log_group(template: Template) -> None:
    template.has_resource_properties(
        "AWS::Logs::MetricFilter",
        {
            "FilterPattern": Match.string_like_regexp("CompensationFailed"),
            "MetricTransformations": [Match.object_like({"MetricName": "CompensationFailed"})],
        },
    )


def test_topic_encrypted_tls_only_dashboard_and_email(template: Template, variant) -> None:
    template.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})
    template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Effect": "Deny", "Condition": Match.any_value()})]
                )
            }
        },
    )
    template.resource_count_is("AWS::CloudWatch::Dashboard", 1)
    template.resource_count_is("AWS::SNS::Subscription", 0)
    subs = [r for r in variant.template()["Resources"].values() if r["Type"] == "AWS::SNS::Subscription"]
    assert [s["Properties"]["Endpoint"] for s in subs] == ["oncall@example.com"]


def test_log_groups_encrypted_with_retention(resources) -> None:
    for logical_id, group in resources("AWS::Logs::LogGroup").items():
        assert "KmsKeyId" in group["Properties"], logical_id
        assert group["Properties"]["RetentionInDays"] == 30, logical_id


def test_outputs(template_json) -> None:
    outputs = set(template_json["Outputs"])
    assert {
        "QueueUrl",
        "DeadLetterQueueUrl",
        "CommandApiUrl",
        "DatabaseProxyEndpoint",
        "OrderSagaStateMachineArn",
        "OrderProjectionStateMachineArn",
        "AlarmTopicArn",
    } <= outputs


def test_cdk_nag_zero_findings(synth, variant) -> None:
    assert [str(f) for f in synth.nag_findings] == []
    assert [str(f) for f in variant.nag_findings] == []


def test_cfn_lint_zero_findings(synth, variant) -> None:
    assert run_cfn_lint(synth.templates, regions=[synth.region]) == []
    assert run_cfn_lint(variant.templates, regions=[variant.region]) == []


def test_prebuilt_dependencies_layer_replaces_the_bundled_one(variant) -> None:
    resources = variant.template()["Resources"]
    built = [r for r in resources.values() if r["Type"] == "AWS::Lambda::LayerVersion"]
    # only saga-outbox's own layer is built; it needs no bundling
    assert [r["Properties"]["Description"][:19] for r in built] == ["saga-outbox runtime"]
    layers = [
        r["Properties"]["Layers"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::Function"
        and r["Properties"].get("Handler", "").startswith("saga_outbox.lambdas.")
    ]
    assert layers
    assert all("arn:aws:lambda:us-east-1:123456789012:layer:saga-deps:3" in ls for ls in layers)


def test_custom_metrics_namespace_is_emitted_where_the_alarms_watch(variant) -> None:
    """metrics_namespace reaches the functions as POWERTOOLS_METRICS_NAMESPACE and the alarms
    watch the same namespace (the handlers' Metrics read the variable, tests/unit checks it)."""
    resources = variant.template()["Resources"]
    envs = [
        r["Properties"]["Environment"]["Variables"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::Function"
        and r["Properties"].get("Handler", "").startswith("saga_outbox.lambdas.")
    ]
    assert {e["POWERTOOLS_METRICS_NAMESPACE"] for e in envs} == {"Shop/Sagas"}
    custom = {
        r["Properties"]["MetricName"]
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"].get("Namespace") == "Shop/Sagas"
    }
    reconciler = {f"Reconcile{k}" for k in ("ExecutionsStarted", "StartFailures", "StuckExecutions")}
    reconciler |= {"ReconcileCompensationFailed", "ReconcileLostDispatches"}  # (not reporting)
    assert custom == {"OldestPendingAgeSeconds", "CompensationFailed"} | reconciler
    assert not [
        r
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"].get("Namespace") == "SagaOutbox"
    ]


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"stage": "Prod!"}, "stage"),
        ({"aurora_min_acu": "8", "aurora_max_acu": "2"}, "aurora_min_acu"),
        ({"nat_gateways": "7"}, "nat_gateways"),
        ({"deletion_protection": "maybe"}, "boolean"),
        ({"account": "12"}, "account"),
        ({"relay": "cron"}, "relay"),
        ({"connection_budget": "0"}, "connection_budget"),
        ({"relay_min_tasks": "3", "relay_max_tasks": "2"}, "relay_min_tasks"),
    ],
)
def test_context_is_validated(context, message) -> None:
    with pytest.raises(ValueError, match=message):
        DeploymentConfig.from_context(context.get)


def test_context_defaults_and_coercion() -> None:
    config = DeploymentConfig.from_context(
        {"relay_schedule_minutes": "2", "deletion_protection": "false"}.get
    )
    assert config.relay_schedule_minutes == 2 and config.relay_max_seconds == 110
    assert config.deletion_protection is False
    assert DeploymentConfig().stack_name == "SagaOutbox-dev"


def test_validation_report_findings_are_collected(tmp_path) -> None:
    """The parser behind the zero-findings gate reads CDK's policy-validation report."""
    import json

    from saga_outbox.cdk.checks import _read_validation_report

    report = {
        "pluginReports": [
            {
                "pluginName": "AwsSolutions",
                "violations": [
                    {
                        "ruleName": "AwsSolutions-SQS4",
                        "description": "The SQS queue does not require requests to use SSL.",
                        "severity": "error",
                        "violatingConstructs": [{"constructPath": "S/Q/Resource"}],
                    },
                    {"ruleName": "AwsSolutions-X", "severity": "warning", "violatingConstructs": []},
                ],
            }
        ]
    }
    path = tmp_path / "validation-report.json"
    path.write_text(json.dumps(report))
    findings = _read_validation_report(path)
    assert [(f.severity, f.rule, f.path) for f in findings] == [
        ("error", "AwsSolutions-SQS4", "S/Q/Resource"),
        ("warning", "AwsSolutions-X", "?"),
    ]
    assert _read_validation_report(tmp_path / "missing.json") == []
