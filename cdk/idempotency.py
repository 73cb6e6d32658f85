"""DynamoDB table of Powertools Idempotency (partition key ``id``, TTL ``expiration``)."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

__all__ = ["IdempotencyStore"]


class IdempotencyStore(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.TableV2(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name="id", type=dynamodb.AttributeType.STRING),
            time_to_live_attribute="expiration",
            billing=dynamodb.Billing.on_demand(),
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            # AWS-managed key: encrypted at rest without KMS grants with wildcard actions.
            encryption=dynamodb.TableEncryptionV2.aws_managed_key(),
            deletion_protection=False,
            removal_policy=RemovalPolicy.DESTROY,
        )

    def grant_use(self, grantee: iam.IGrantable) -> None:
        """The item actions Powertools Idempotency uses, nothing else."""
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
            resource_arns=[self.table.table_arn],
        )
