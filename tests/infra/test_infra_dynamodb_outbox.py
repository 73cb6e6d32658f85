"""``SagaOutbox(..., dynamodb_outbox=True)``: the outbox table, its stream event source and the
consumer's grants, cdk-nag and cfn-lint clean."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from saga_outbox.cdk.checks import SynthResult, run_cfn_lint, synthesize
from tests.infra.conftest import of_type, user_builder

pytestmark = pytest.mark.infra


@pytest.fixture(scope="module")
def ddb_synth(tmp_path_factory: pytest.TempPathFactory, user_source: Path) -> SynthResult:
    return synthesize(
        tmp_path_factory.mktemp("cdk-ddb"), build=user_builder(user_source, dynamodb_outbox=True)
    )


@pytest.fixture(scope="module")
def tpl(ddb_synth: SynthResult) -> dict[str, Any]:
    return ddb_synth.template()


def _outbox_table(tpl: dict[str, Any]) -> dict[str, Any]:
    (table,) = [r for k, r in of_type(tpl, "AWS::DynamoDB::GlobalTable").items() if "DynamoDbOutbox" in k]
    return table["Properties"]


def test_the_table_has_a_new_image_stream_ttl_and_pitr(tpl: dict[str, Any]) -> None:
    props = _outbox_table(tpl)
    assert props["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert [k["AttributeName"] for k in props["KeySchema"]] == ["pk", "sk"]
    (replica,) = props["Replicas"]
    assert replica["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert replica["DeletionProtectionEnabled"] is True


def test_the_event_source_mapping_reports_item_failures_bisects_and_has_an_on_failure_queue(
    tpl: dict[str, Any],
) -> None:
    (esm,) = [
        r["Properties"]
        for r in of_type(tpl, "AWS::Lambda::EventSourceMapping").values()
        if "StartingPosition" in r["Properties"]
    ]
    assert esm["StartingPosition"] == "TRIM_HORIZON"
    assert esm["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert esm["BisectBatchOnFunctionError"] is True
    assert esm["MaximumRetryAttempts"] == 100
    assert esm["MaximumRecordAgeInSeconds"] == 86400
    assert esm["ParallelizationFactor"] == 1
    on_failure = esm["DestinationConfig"]["OnFailure"]["Destination"]
    failure_queue = on_failure["Fn::GetAtt"][0]
    queue = tpl["Resources"][failure_queue]
    assert "FifoQueue" not in queue["Properties"]  # Lambda's on-failure destinations are standard queues
    (pattern,) = [f["Pattern"] for f in esm["FilterCriteria"]["Filters"]]
    assert '"eventName":["INSERT"]' in pattern and '"kind":{"S":["event"]}' in pattern


def _policy_actions(tpl: dict[str, Any], role_fragment: str) -> set[str]:
    actions: set[str] = set()
    for r in of_type(tpl, "AWS::IAM::Policy").values():
        roles = [ref.get("Ref", "") for ref in r["Properties"]["Roles"]]
        if any(role_fragment in role for role in roles):
            for stmt in r["Properties"]["PolicyDocument"]["Statement"]:
                a = stmt["Action"]
                actions.update([a] if isinstance(a, str) else a)
    return actions


def test_the_consumer_reads_the_stream_and_sends_to_the_queue_and_nothing_else(tpl: dict[str, Any]) -> None:
    actions = _policy_actions(tpl, "StreamRole")
    assert {"dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:DescribeStream"} <= actions
    assert {"sqs:SendMessage", "sqs:SendMessageBatch"} & actions
    assert "sqs:SendMessage" in actions  # the on-failure queue and the FIFO queue
    assert not {a for a in actions if a.startswith("dynamodb:") and "Item" in a}  # never writes the table
    assert not {a for a in actions if a.endswith("*") and a != "dynamodb:ListStreams"} - {
        "kms:ReEncrypt*",
        "kms:GenerateDataKey*",
    }


def test_cdk_nag_and_cfn_lint_find_nothing(ddb_synth: SynthResult) -> None:
    assert [str(f) for f in ddb_synth.nag_findings] == []
    assert run_cfn_lint(ddb_synth.templates, regions=["eu-west-1"]) == []
