"""Queues, database, proxy and idempotency table in the synthesized template."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match, Template

pytestmark = pytest.mark.infra


def test_fifo_queue_with_fifo_dlq_kms_and_no_content_dedup(template: Template, resources) -> None:
    queues = resources("AWS::SQS::Queue")
    assert len(queues) == 2
    assert all(q["Properties"]["FifoQueue"] is True for q in queues.values())
    assert all(q["Properties"]["ContentBasedDeduplication"] is False for q in queues.values())
    assert all("KmsMasterKeyId" in q["Properties"] for q in queues.values())
    main = [q for q in queues.values() if "RedrivePolicy" in q["Properties"]]
    assert len(main) == 1
    redrive = main[0]["Properties"]["RedrivePolicy"]
    assert redrive["maxReceiveCount"] == 5
    dlq_id = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
    assert queues[dlq_id]["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    # default: normal throughput mode
    assert "DeduplicationScope" not in main[0]["Properties"]


def test_queues_deny_non_tls(template: Template) -> None:
    template.resource_count_is("AWS::SQS::QueuePolicy", 2)
    template.all_resources_properties(
        "AWS::SQS::QueuePolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
                        )
                    ]
                )
            }
        },
    )


def test_high_throughput_fifo_is_a_context_switch(variant) -> None:
    queues = {k: r for k, r in variant.template()["Resources"].items() if r["Type"] == "AWS::SQS::Queue"}
    main = next(q for q in queues.values() if "RedrivePolicy" in q["Properties"])
    assert main["Properties"]["DeduplicationScope"] == "messageGroup"
    assert main["Properties"]["FifoThroughputLimit"] == "perMessageGroupId"


def test_aurora_serverless_v2_encrypted_iam_auth_protected_backed_up(template: Template) -> None:
    template.has_resource_properties(
        "AWS::RDS::DBCluster",
        {
            "Engine": "aurora-postgresql",
            "StorageEncrypted": True,
            "EnableIAMDatabaseAuthentication": True,
            "DeletionProtection": True,
            "BackupRetentionPeriod": 7,
            "ServerlessV2ScalingConfiguration": {"MinCapacity": 0.5, "MaxCapacity": 4},
            "EnableCloudwatchLogsExports": ["postgresql"],
        },
    )
    template.has_resource("AWS::RDS::DBCluster", {"DeletionPolicy": "Snapshot"})
    template.has_resource_properties("AWS::RDS::DBInstance", {"DBInstanceClass": "db.serverless"})
    template.has_resource_properties(
        "AWS::SecretsManager::RotationSchedule", {"RotationRules": {"ScheduleExpression": "rate(30 days)"}}
    )


def test_rds_proxy_requires_iam_and_tls(template: Template) -> None:
    template.has_resource_properties(
        "AWS::RDS::DBProxy",
        {
            "EngineFamily": "POSTGRESQL",
            "RequireTLS": True,
            "Auth": [Match.object_like({"IAMAuth": "REQUIRED"})],
            "DBProxyName": "saga-outbox-dev",
        },
    )


def test_vpc_has_flow_logs_and_no_nat_by_default(template: Template, variant) -> None:
    template.resource_count_is("AWS::EC2::FlowLog", 1)
    template.resource_count_is("AWS::EC2::NatGateway", 0)
    assert any(r["Type"] == "AWS::EC2::NatGateway" for r in variant.template()["Resources"].values())


def test_idempotency_table_ttl_pitr_encryption(template: Template) -> None:
    template.has_resource_properties(
        "AWS::DynamoDB::GlobalTable",
        {
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "TimeToLiveSpecification": {"AttributeName": "expiration", "Enabled": True},
            "SSESpecification": {"SSEEnabled": True},
            "Replicas": [
                Match.object_like({"PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True}})
            ],
        },
    )
