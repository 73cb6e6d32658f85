"""The orders example's CDK app: ``python -m examples.orders.infra`` (the ``app`` of ``cdk.json``).

This repository's own user of :class:`~saga_outbox.cdk.SagaOutbox`: the orders example stack.
It adds the example's command API (a Function URL with AWS_IAM auth) through the construct's
accessors, as any user adds their own functions. Context keys (``-c key=value``), all optional:
see :class:`saga_outbox.cdk.config.DeploymentConfig`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import shutil
from pathlib import Path

from aws_cdk import App, CfnOutput, Environment, Stack, Tags
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from saga_outbox.cdk import DeploymentConfig, SagaOutbox, packaging
from saga_outbox.cdk.context import OFFLINE_CONTEXT, feature_flags
from saga_outbox.cdk.nag import add_nag_checks

__all__ = ["EXAMPLE_APP", "FEATURE_FLAGS", "OFFLINE_CONTEXT", "OrdersExampleStack", "build_app", "main"]

#: the repository's cdk.json: the recommended flags of a new CDK project (``cdk init``)
CDK_JSON = Path(__file__).resolve().parents[2] / "cdk.json"
FEATURE_FLAGS: Mapping[str, Any] = feature_flags(CDK_JSON)

#: the app this repository deploys: the orders example
EXAMPLE_APP = "examples.orders.app:app"
EXAMPLES_DIR = Path(__file__).resolve().parents[1]


def example_source_dir() -> Path:
    """A source_dir holding only ``examples/`` (the repository root would ship cdk/, tests/ ...)."""
    if not (EXAMPLES_DIR / "orders").is_dir():
        raise RuntimeError(f"the orders example is not here ({EXAMPLES_DIR}): run from a checkout")
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    return packaging.staged_directory(
        "example", lambda root: shutil.copytree(EXAMPLES_DIR, root / "examples", ignore=skip)
    )


class OrdersExampleStack(Stack):
    """The construct with the orders app, plus the example's command API and the outputs."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: DeploymentConfig, **kwargs: object
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        Tags.of(self).add("stage", config.stage, exclude_resource_types=["AWS::RDS::DBProxyTargetGroup"])
        self.sagas = SagaOutbox(
            self, "Sagas", app=EXAMPLE_APP, source_dir=example_source_dir(), config=config
        )
        self.command_api = self.sagas.add_function(
            "CommandApi",
            "command_api",
            handler="examples.orders.handler.handler",
            environment={"ALLOW_SIMULATION": "false"},
        )
        self.command_api_url = self.command_api.add_function_url(
            auth_type=lambda_.FunctionUrlAuthType.AWS_IAM
        )

        sagas = self.sagas
        CfnOutput(self, "QueueUrl", value=sagas.queue.queue_url)
        if sagas.dead_letter_queue is not None:
            CfnOutput(self, "DeadLetterQueueUrl", value=sagas.dead_letter_queue.queue_url)
        CfnOutput(self, "CommandApiUrl", value=self.command_api_url.url)
        CfnOutput(self, "DatabaseProxyEndpoint", value=sagas.database.proxy_endpoint)
        if sagas.database.secret is not None:
            CfnOutput(self, "DatabaseSecretArn", value=sagas.database.secret.secret_arn)
        CfnOutput(self, "IdempotencyTableName", value=sagas.idempotency_table.table_name)
        CfnOutput(self, "AlarmTopicArn", value=sagas.alarm_topic.topic_arn)
        for name, sm in sagas.state_machines.items():
            CfnOutput(self, f"{name}StateMachineArn", value=sm.state_machine_arn)


def build_app(
    *, outdir: str | None = None, context: Mapping[str, Any] | None = None, nag: bool = True
) -> tuple[App, OrdersExampleStack]:
    """The app with its one stack; cdk-nag (AwsSolutions) is registered unless ``nag=False``."""
    app = App(outdir=outdir, context={**FEATURE_FLAGS, **(context or {})})
    config = DeploymentConfig.from_context(app.node.try_get_context)
    stack = OrdersExampleStack(
        app,
        config.stack_name,
        config=config,
        env=Environment(account=config.account, region=config.region),
        description=f"saga-outbox ({config.stage}): orders example, outbox -> SQS FIFO -> Step Functions",
        termination_protection=config.deletion_protection,
    )
    if nag:
        add_nag_checks(app)
    return app, stack


def main() -> None:
    # Under the CDK CLI, CDK_OUTDIR is set and App picks it up; standalone, write ./cdk.out.
    outdir = None if os.environ.get("CDK_OUTDIR") else "cdk.out"
    app, _ = build_app(outdir=outdir)
    app.synth()


if __name__ == "__main__":
    main()
