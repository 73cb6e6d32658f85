"""Offline syntheses shared by every infra test (one per session each): the repository's orders
example stack (default and a variant), and user stacks built with ``SagaOutbox`` from a tiny
SagaApp defined here (defaults, relay="fargate", bring-your-own resources with relay="none")."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import App, Environment, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Template

from examples.orders.infra import FEATURE_FLAGS, build_app
from saga_outbox import SagaApp
from saga_outbox.cdk import ExistingDatabase, SagaOutbox
from saga_outbox.cdk.checks import SynthResult, synthesize
from saga_outbox.cdk.nag import add_nag_checks
from tests.apps import room_app

# A variant exercising the non-default switches (NAT, high-throughput FIFO, e-mail, prebuilt layer,
# a custom metrics namespace, a slower reconciler).
VARIANT_CONTEXT: dict[str, Any] = {
    "stage": "prod",
    "region": "us-east-1",
    "nat_gateways": "1",
    "high_throughput_fifo": "true",
    "alarm_email": "oncall@example.com",
    "dependencies_layer_arn": "arn:aws:lambda:us-east-1:123456789012:layer:saga-deps:3",
    "relay_schedule_minutes": "5",
    "aurora_readers": "1",
    "metrics_namespace": "Shop/Sagas",
    "reconcile_every_minutes": "15",
}

#: the user's module, as it sits in their source_dir
USER_MODULE = """\
from saga_outbox import SagaApp, Step, Workflow, WorkflowKind

app = SagaApp("rooms")
app.add(Workflow(name="RoomSaga", kind=WorkflowKind.STANDARD, steps=[
    Step(name="BookRoom", action="book_room", compensation="cancel_room"),
    Step(name="ChargeCard", action="charge_card"),
]))
app.route("RoomRequested", "RoomSaga")
for _action in ("book_room", "cancel_room", "charge_card"):
    app.action("RoomSaga", _action)(lambda ctx: {})
"""
USER_APP_SPEC = "myshop.sagas:app"


def tiny_app() -> SagaApp:
    """A two-step saga, like a user's first one (the actions never run at synth)."""
    return room_app()


@pytest.fixture(scope="session")
def user_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's project folder: their package plus things that must stay out of the asset."""
    root = tmp_path_factory.mktemp("user-project")
    (root / "myshop").mkdir()
    (root / "myshop" / "__init__.py").write_text("")
    (root / "myshop" / "sagas.py").write_text(USER_MODULE)
    for junk in (".venv/lib", "cdk.out", "tests", ".git", "myshop/__pycache__"):
        (root / junk).mkdir(parents=True)
        (root / junk / "junk.txt").write_text("must not be deployed")
    return root


def user_builder(source_dir: Path, **construct_kwargs: Any) -> Callable[..., tuple[App, Stack]]:
    """``build(outdir=, context=)`` for :func:`synthesize`: a user's stack with the construct."""

    def build(*, outdir: str, context: dict[str, Any]) -> tuple[App, Stack]:
        app = App(outdir=outdir, context={**FEATURE_FLAGS, **context})
        stack = Stack(app, "Shop", env=Environment(region="eu-west-1"))
        SagaOutbox(
            stack, "Sagas", app=tiny_app(), app_spec=USER_APP_SPEC, source_dir=source_dir, **construct_kwargs
        )
        add_nag_checks(app)
        return app, stack

    return build


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> SynthResult:
    return synthesize(tmp_path_factory.mktemp("cdk-default"), build=build_app)


@pytest.fixture(scope="session")
def template_json(synth: SynthResult) -> dict[str, Any]:
    return synth.template()


@pytest.fixture(scope="session")
def template(template_json: dict[str, Any]) -> Template:
    return Template.from_json(template_json)


@pytest.fixture(scope="session")
def variant(tmp_path_factory: pytest.TempPathFactory) -> SynthResult:
    return synthesize(tmp_path_factory.mktemp("cdk-variant"), VARIANT_CONTEXT, build=build_app)


@pytest.fixture(scope="session")
def user_synth(tmp_path_factory: pytest.TempPathFactory, user_source: Path) -> SynthResult:
    """A minimal user stack: ``SagaOutbox`` with defaults, cdk-nag registered."""
    return synthesize(tmp_path_factory.mktemp("cdk-user"), build=user_builder(user_source))


@pytest.fixture(scope="session")
def fargate_synth(tmp_path_factory: pytest.TempPathFactory, user_source: Path) -> SynthResult:
    return synthesize(
        tmp_path_factory.mktemp("cdk-fargate"), build=user_builder(user_source, relay="fargate")
    )


@pytest.fixture(scope="session")
def byo(user_source: Path) -> tuple[Stack, SagaOutbox, dict[str, Any]]:
    """Bring-your-own VPC, database (proxy + secret + cluster), queue and topic; relay="none"."""
    app = App(context={**FEATURE_FLAGS, "aws:cdk:bundling-stacks": []})
    stack = Stack(app, "Byo", env=Environment(region="eu-west-1"))
    vpc = ec2.Vpc(stack, "TheirVpc", max_azs=2, nat_gateways=1)
    client_sg = ec2.SecurityGroup(stack, "TheirClientSg", vpc=vpc)
    secret = secretsmanager.Secret.from_secret_name_v2(stack, "TheirSecret", "their/db")
    proxy = rds.DatabaseProxy.from_database_proxy_attributes(
        stack,
        "TheirProxy",
        db_proxy_arn="arn:aws:rds:eu-west-1:123456789012:db-proxy:prx-0123456789abcdef0",
        db_proxy_name="their-proxy",
        endpoint="their-proxy.proxy-abc.eu-west-1.rds.amazonaws.com",
        security_groups=[client_sg],
    )
    queue = sqs.Queue(stack, "TheirQueue", fifo=True, enforce_ssl=True)
    topic = sns.Topic(stack, "TheirTopic")
    database = ExistingDatabase(
        proxy=proxy, secret=secret, client_security_group=client_sg, database_name="shop"
    )
    sagas = SagaOutbox(
        stack,
        "Sagas",
        app=tiny_app(),
        app_spec=USER_APP_SPEC,
        source_dir=user_source,
        vpc=vpc,
        database=database,
        queue=queue,
        alarm_topic=topic,
        relay="none",
    )
    return stack, sagas, Template.from_stack(stack).to_json()


def of_type(template: dict[str, Any], cfn_type: str) -> dict[str, dict[str, Any]]:
    """``{logical id: resource}`` of ``cfn_type`` in a template dict."""
    return {k: r for k, r in template["Resources"].items() if r["Type"] == cfn_type}


@pytest.fixture(scope="session")
def resources(template_json: dict[str, Any]) -> Callable[[str], dict[str, dict[str, Any]]]:
    """``resources("AWS::SQS::Queue")`` -> ``{logical id: resource}`` of the default template."""

    def by_type(cfn_type: str) -> dict[str, dict[str, Any]]:
        return of_type(template_json, cfn_type)

    return by_type
