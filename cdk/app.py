"""CDK entry point: ``python -m saga_outbox.cdk.app`` (the ``app`` of ``cdk.json``).

Context keys (``-c key=value``), all optional: see :class:`saga_outbox.cdk.config.DeploymentConfig`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import App, Environment

from saga_outbox._discovery import load_app
from saga_outbox.cdk.config import DeploymentConfig
from saga_outbox.cdk.nag import add_nag_checks
from saga_outbox.cdk.stack import SagaOutboxStack

__all__ = ["FEATURE_FLAGS", "OFFLINE_CONTEXT", "build_app", "main"]

# Feature flags a new CDK project would get in cdk.json; set here so that the CLI, the tests and
# ``saga_outbox.cdk.checks`` synthesize the same template. Context given by the caller wins.
FEATURE_FLAGS: Mapping[str, Any] = {
    "@aws-cdk/core:checkSecretUsage": True,
    "@aws-cdk/core:target-partitions": ["aws", "aws-cn"],
    "@aws-cdk/aws-ec2:restrictDefaultSecurityGroup": True,
    "@aws-cdk/aws-iam:minimizePolicies": True,
    "@aws-cdk/aws-lambda:recognizeLayerVersion": True,
    "@aws-cdk/core:enablePartitionLiterals": True,
}

#: the app this repository deploys: the orders example
EXAMPLE_APP = "examples.orders.app:app"

# Skips asset bundling (the pip-built dependencies layer) so a synth needs no network.
OFFLINE_CONTEXT: Mapping[str, Any] = {"aws:cdk:bundling-stacks": []}


def build_app(
    *, outdir: str | None = None, context: Mapping[str, Any] | None = None, nag: bool = True
) -> tuple[App, SagaOutboxStack]:
    """The app with its one stack; cdk-nag (AwsSolutions) is registered unless ``nag=False``."""
    app = App(outdir=outdir, context={**FEATURE_FLAGS, **(context or {})})
    config = DeploymentConfig.from_context(app.node.try_get_context)
    stack = SagaOutboxStack(
        app,
        config.stack_name,
        config=config,
        app=load_app(EXAMPLE_APP),
        app_spec=EXAMPLE_APP,
        env=Environment(account=config.account, region=config.region),
        description=f"saga-outbox ({config.stage}): transactional outbox -> SQS FIFO -> Step Functions sagas",
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
