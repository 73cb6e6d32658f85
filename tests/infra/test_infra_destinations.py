"""The app's other destinations in the synthesized template: an SNS FIFO topic, an event bus and
a Kinesis stream per declared destination, least-privilege grants to the relay, and the
OUTBOX_DESTINATIONS its publishers are built from; cdk-nag and cfn-lint clean."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Environment, Stack
from aws_cdk import aws_kinesis as kinesis
from aws_cdk.assertions import Template

from examples.orders.infra import FEATURE_FLAGS
from outbox_relay.routed import publishers_from_spec
from saga_outbox.cdk import SagaOutbox
from saga_outbox.cdk.checks import SynthResult, run_cfn_lint, synthesize
from saga_outbox.cdk.nag import add_nag_checks
from tests.apps import room_app
from tests.infra.conftest import USER_APP_SPEC, of_type

pytestmark = pytest.mark.infra


def _app() -> Any:
    app = room_app()
    app.destination("fanout", kind="sns")
    app.destination("audit", kind="eventbridge")
    app.destination("stream", kind="kinesis")
    app.deliver("RoomRequested", to=["sqs", "fanout", "audit", "stream"])
    return app


@pytest.fixture(scope="module")
def dest_synth(tmp_path_factory: pytest.TempPathFactory, user_source: Path) -> SynthResult:
    def build(*, outdir: str, context: dict[str, Any]) -> tuple[App, Stack]:
        app = App(outdir=outdir, context={**FEATURE_FLAGS, **context})
        stack = Stack(app, "Shop", env=Environment(region="eu-west-1"))
        SagaOutbox(stack, "Sagas", app=_app(), app_spec=USER_APP_SPEC, source_dir=user_source)
        add_nag_checks(app)
        return app, stack

    return synthesize(tmp_path_factory.mktemp("cdk-destinations"), build=build)


def test_destinations_are_created_encrypted_and_clean(dest_synth: SynthResult) -> None:
    template = dest_synth.template()
    [topic] = [t for t in of_type(template, "AWS::SNS::Topic").values() if t["Properties"].get("FifoTopic")]
    assert topic["Properties"]["FifoTopic"] is True
    assert topic["Properties"]["ContentBasedDeduplication"] is False
    assert "KmsMasterKeyId" in topic["Properties"]
    assert len(of_type(template, "AWS::Events::EventBus")) == 1
    [stream] = of_type(template, "AWS::Kinesis::Stream").values()
    assert stream["Properties"]["StreamEncryption"] == {"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"}
    assert stream["Properties"]["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
    assert [str(f) for f in dest_synth.nag_findings] == []
    assert run_cfn_lint(dest_synth.templates, regions=["eu-west-1"]) == []


def test_the_relay_gets_exactly_the_publish_actions_and_its_destinations(dest_synth: SynthResult) -> None:
    template = dest_synth.template()
    relay = next(
        f
        for f in of_type(template, "AWS::Lambda::Function").values()
        if "RELAY_MAX_SECONDS" in f["Properties"].get("Environment", {}).get("Variables", {})
    )
    variables = relay["Properties"]["Environment"]["Variables"]
    spec = variables["OUTBOX_DESTINATIONS"]
    text = json.dumps(spec)
    for name in ("fanout", "audit", "stream"):
        assert f'\\"{name}\\"' in text
    role = relay["Properties"]["Role"]["Fn::GetAtt"][0]
    actions: set[str] = set()
    for policy in of_type(template, "AWS::IAM::Policy").values():
        if {"Ref": role} in policy["Properties"]["Roles"]:
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                acts = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
                actions |= set(acts)
                if any(a.startswith(("sns:", "events:", "kinesis:")) for a in acts):
                    assert "*" not in json.dumps(statement["Resource"]), statement  # named resources only
    assert {
        "sns:Publish",
        "sns:GetTopicAttributes",
        "events:PutEvents",
        "events:DescribeEventBus",
        "kinesis:PutRecords",
        "kinesis:DescribeStreamSummary",
    } <= actions
    assert not {a for a in actions if a.endswith(":*") or a in ("sns:*", "events:*", "kinesis:*")}


def test_the_users_own_stream_is_taken_not_created(user_source: Path) -> None:
    app = App(context={**FEATURE_FLAGS, "aws:cdk:bundling-stacks": []})
    stack = Stack(app, "Byo", env=Environment(region="eu-west-1"))
    theirs = kinesis.Stream.from_stream_arn(
        stack, "Theirs", "arn:aws:kinesis:eu-west-1:123456789012:stream/theirs"
    )
    sagas = SagaOutbox(
        stack,
        "Sagas",
        app=_app(),
        app_spec=USER_APP_SPEC,
        source_dir=user_source,
        destination_resources={"stream": theirs},
    )
    template = Template.from_stack(stack).to_json()
    assert of_type(template, "AWS::Kinesis::Stream") == {}
    assert sagas.destinations.streams["stream"] is theirs
    with pytest.raises(ValueError, match=r"\['nowhere'\]"):
        SagaOutbox(
            stack,
            "Again",
            app=_app(),
            app_spec=USER_APP_SPEC,
            source_dir=user_source,
            destination_resources={"nowhere": theirs},
        )


def test_the_relay_builds_its_publishers_from_the_spec() -> None:
    spec = json.dumps(
        {
            "fanout": {"kind": "sns", "target": "arn:aws:sns:eu-west-1:123456789012:t.fifo"},
            "audit": {"kind": "eventbridge", "target": "bus"},
            "stream": {"kind": "kinesis", "target": "s"},
        }
    )
    publishers = publishers_from_spec(spec, region_name="eu-west-1")
    assert {n: type(p).__name__ for n, p in publishers.items()} == {
        "fanout": "SnsFifoPublisher",
        "audit": "EventBridgePublisher",
        "stream": "KinesisPublisher",
    }
