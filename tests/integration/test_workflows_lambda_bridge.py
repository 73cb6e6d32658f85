"""The moto Lambda bridge: real boto3 Invoke against moto, routed to in-process handlers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from saga_outbox.local.lambda_bridge import LocalLambdaContext, bridge_lambda, lambda_bridge, unbridge_lambda

pytestmark = pytest.mark.integration

MOTO_CONFIG: Any = {"lambda": {"use_docker": False}, "stepfunctions": {"execute_state_machine": True}}


class Declined(Exception):
    pass


def handler(event: Any, context: LocalLambdaContext) -> Any:
    if event.get("fail"):
        raise Declined("card declined")
    if event.get("unserializable"):
        return {1, 2}
    return {
        "echo": event,
        "function_name": context.function_name,
        "remaining": context.get_remaining_time_in_millis(),
        "request_id": context.aws_request_id,
    }


@pytest.fixture
def lam(aws_env: None) -> Iterator[Any]:
    with mock_aws(config=MOTO_CONFIG), lambda_bridge({"steps": handler}):
        yield boto3.client("lambda", region_name="us-east-1")


def invoke(client: Any, name: str, payload: Any, **kw: Any) -> tuple[dict, Any]:
    resp = client.invoke(FunctionName=name, Payload=json.dumps(payload).encode(), **kw)
    body = resp["Payload"].read()
    return resp, json.loads(body) if body else None


@pytest.mark.parametrize(
    "name",
    [
        "steps",
        "steps:live",
        "arn:aws:lambda:us-east-1:000000000000:function:steps",
        "arn:aws:lambda:us-east-1:123456789012:function:steps:$LATEST",
        "123456789012:function:steps",
    ],
)
def test_routes_names_and_arns_to_the_handler(lam: Any, name: str) -> None:
    resp, body = invoke(lam, name, {"a": 1})
    assert "FunctionError" not in resp
    assert body["echo"] == {"a": 1}
    assert body["function_name"] == "steps"
    assert 0 < body["remaining"] <= 30_000
    assert body["request_id"]


def test_a_raising_handler_is_an_unhandled_function_error(lam: Any) -> None:
    resp, body = invoke(lam, "steps", {"fail": True})
    assert resp["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Declined"
    assert body["errorMessage"] == "card declined"
    assert isinstance(body["stackTrace"], list)


def test_unserializable_result_is_a_marshal_error(lam: Any) -> None:
    resp, body = invoke(lam, "steps", {"unserializable": True})
    assert resp["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.MarshalError"


def test_event_and_dry_run_invocations(lam: Any) -> None:
    calls: list[Any] = []
    bridge_lambda("recorder", lambda e, c: calls.append(e))
    resp = lam.invoke(FunctionName="recorder", InvocationType="Event", Payload=b'{"x": 1}')
    assert resp["StatusCode"] == 202
    resp = lam.invoke(FunctionName="recorder", InvocationType="DryRun", Payload=b'{"x": 2}')
    assert resp["StatusCode"] == 204
    assert calls == [{"x": 1}]


def test_function_created_in_moto_uses_its_timeout(lam: Any) -> None:
    iam = boto3.client("iam", region_name="us-east-1")
    role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    lam.create_function(
        FunctionName="steps",
        Runtime="python3.12",
        Role=role,
        Handler="x.handler",
        Code={"ZipFile": b"not really a zip"},
        Timeout=7,
    )
    _, body = invoke(lam, "steps", {})
    assert 6_000 < body["remaining"] <= 7_000


def test_unbridged_names_fall_through_and_patch_is_removed(aws_env: None) -> None:
    from moto.awslambda_simple.models import LambdaSimpleBackend

    original = LambdaSimpleBackend.invoke
    with mock_aws(config=MOTO_CONFIG):
        client = boto3.client("lambda", region_name="us-east-1")
        with lambda_bridge({"steps": handler}):
            with lambda_bridge():  # nesting keeps the outer registrations
                _, body = invoke(client, "steps", {"n": 1})
                assert body["echo"] == {"n": 1}
            _, body = invoke(client, "other", {"n": 2})
            assert body == {"n": 2}  # moto's canned answer echoes the payload
            unbridge_lambda("steps")
            _, body = invoke(client, "steps", {"n": 3})
            assert body == {"n": 3}
        assert LambdaSimpleBackend.invoke is original


def test_bridge_lambda_rejects_arns() -> None:
    with pytest.raises(ValueError, match="plain Lambda function name"):
        bridge_lambda("arn:aws:lambda:us-east-1:1:function:x", handler)
