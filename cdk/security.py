"""The stack's customer-managed KMS key and encrypted log groups."""

from __future__ import annotations

from aws_cdk import Aws, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

__all__ = ["EncryptionKey", "retention_days"]

_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
}


def retention_days(days: int) -> logs.RetentionDays:
    """CloudWatch Logs retention for ``days`` (one of the keys of ``_RETENTION``)."""
    try:
        return _RETENTION[days]
    except KeyError:
        raise ValueError(f"log_retention_days must be one of {sorted(_RETENTION)}, got {days}") from None


class EncryptionKey(Construct):
    """One rotating CMK for queues, the alarm topic and log groups of this stack.

    The key policy lets CloudWatch Logs (scoped to this account/region's log groups) and
    CloudWatch alarms (publishing to the encrypted SNS topic) use it.
    """

    def __init__(self, scope: Construct, construct_id: str, *, retention: logs.RetentionDays) -> None:
        super().__init__(scope, construct_id)
        self._retention = retention
        stack = Stack.of(self)
        self.key = kms.Key(
            self,
            "Key",
            description=f"{stack.stack_name}: SQS, SNS and CloudWatch Logs encryption",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchLogs",
                principals=[iam.ServicePrincipal(f"logs.{Aws.REGION}.amazonaws.com")],
                actions=[
                    "kms:Encrypt*",
                    "kms:Decrypt*",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:Describe*",
                ],
                resources=["*"],  # key policy: "*" means this key
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": (
                            f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:*"
                        )
                    }
                },
            )
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToPublishToEncryptedTopic",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=["*"],  # key policy: "*" means this key
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            )
        )

    def log_group(self, scope: Construct, construct_id: str, *, name: str | None = None) -> logs.LogGroup:
        """A KMS-encrypted log group with the stack's retention."""
        return logs.LogGroup(
            scope,
            construct_id,
            log_group_name=name,
            encryption_key=self.key,
            retention=self._retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
