"""Deploy your sagas with the AWS CDK: :class:`SagaOutbox`, one construct per concern inside it.

``from saga_outbox.cdk import SagaOutbox, ExistingDatabase, DeploymentConfig`` in your CDK app.
``python -m saga_outbox.cdk.checks MODULE:BUILD`` synthesizes a CDK app offline and runs cdk-nag
and cfn-lint over it. Nothing here is imported by the run-time packages (``outbox_relay``,
``saga_outbox.workflows``, ``saga_outbox.lambdas``).

Names resolve lazily (PEP 562): importing the package does not start jsii.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from saga_outbox._lazy import lazy_exports

if TYPE_CHECKING:
    from saga_outbox.cdk.config import DeploymentConfig
    from saga_outbox.cdk.construct import SagaOutbox
    from saga_outbox.cdk.data import ExistingDatabase

__all__ = ["DeploymentConfig", "ExistingDatabase", "SagaOutbox"]

_LAZY = {
    "SagaOutbox": "saga_outbox.cdk.construct",
    "ExistingDatabase": "saga_outbox.cdk.data",
    "DeploymentConfig": "saga_outbox.cdk.config",
}

__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)
