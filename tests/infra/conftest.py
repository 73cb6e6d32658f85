"""One offline synthesis per session (about 5 s), shared by every infra test."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk.assertions import Template

from saga_outbox.cdk.checks import SynthResult, synthesize

# A variant exercising the non-default switches (NAT, high-throughput FIFO, e-mail, prebuilt layer).
VARIANT_CONTEXT: dict[str, Any] = {
    "stage": "prod",
    "region": "us-east-1",
    "nat_gateways": "1",
    "high_throughput_fifo": "true",
    "alarm_email": "oncall@example.com",
    "dependencies_layer_arn": "arn:aws:lambda:us-east-1:123456789012:layer:saga-deps:3",
    "relay_schedule_minutes": "5",
    "aurora_readers": "1",
}


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> SynthResult:
    return synthesize(tmp_path_factory.mktemp("cdk-default"))


@pytest.fixture(scope="session")
def template_json(synth: SynthResult) -> dict[str, Any]:
    return synth.template()


@pytest.fixture(scope="session")
def template(template_json: dict[str, Any]) -> Template:
    return Template.from_json(template_json)


@pytest.fixture(scope="session")
def variant(tmp_path_factory: pytest.TempPathFactory) -> SynthResult:
    return synthesize(tmp_path_factory.mktemp("cdk-variant"), VARIANT_CONTEXT)


@pytest.fixture(scope="session")
def resources(template_json: dict[str, Any]) -> Callable[[str], dict[str, dict[str, Any]]]:
    """``resources("AWS::SQS::Queue")`` -> ``{logical id: resource}`` of the default template."""

    def of_type(cfn_type: str) -> dict[str, dict[str, Any]]:
        return {k: r for k, r in template_json["Resources"].items() if r["Type"] == cfn_type}

    return of_type
