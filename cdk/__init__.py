"""AWS CDK app of saga-outbox: one construct per concern, composed by :mod:`saga_outbox.cdk.stack`.

``python -m saga_outbox.cdk.app`` synthesizes (the ``app`` of ``cdk.json``);
``python -m saga_outbox.cdk.checks`` runs
cdk-nag and cfn-lint over the synthesized templates. Nothing here is imported by the runtime
packages (``outbox_relay``, ``workflows``, ``lambdas``).
"""

from __future__ import annotations

__all__ = ["build_app"]


def build_app(*args, **kwargs):  # type: ignore[no-untyped-def]
    """Lazy alias of :func:`saga_outbox.cdk.app.build_app` (keeps ``import cdk`` free of jsii start-up)."""
    from saga_outbox.cdk.app import build_app as _build_app

    return _build_app(*args, **kwargs)
