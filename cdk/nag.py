"""cdk-nag v3 wiring: the AwsSolutions pack as a validation plugin, and acknowledgments.

cdk-nag 3 runs through CDK's policy-validation framework (``Validations.of(app).add_plugins``),
not as an Aspect, and acknowledgments are CDK ``Acknowledgment``s, one per finding id
(``AwsSolutions-IAM5[Resource::*]`` etc.): there is no blanket suppression by rule.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, App, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

__all__ = ["acknowledge", "add_nag_checks"]


def add_nag_checks(app: App) -> AwsSolutionsChecks:
    """Register the AwsSolutions pack; synthesis fails on any unacknowledged error."""
    pack = AwsSolutionsChecks(app, verbose=True)
    Validations.of(app).add_plugins(pack)
    return pack


def acknowledge(construct: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge one cdk-nag finding on ``construct`` (and its children) with a specific reason."""
    if len(reason) < 20:
        raise ValueError(f"give a specific reason for acknowledging {rule_id}")
    Validations.of(construct).acknowledge(Acknowledgment(id=rule_id, reason=reason))
