"""``relay="fargate"``: the relay as an ECS Fargate service, the low-latency choice.

A scheduled Lambda drains the outbox once a period (up to a minute commit -> SQS); a service
wakes on NOTIFY within milliseconds. Its connection goes to the **cluster endpoint**, not RDS
Proxy: LISTEN (and psycopg's auto-prepared statements) pin a proxy session, and a LISTEN through
the proxy can miss notifications. The task authenticates with the secret's password (injected
by ECS from Secrets Manager, never in the template); the cluster security group admits the
task's security group directly.

Scaling: step scaling on the same ``OldestPendingAgeSeconds`` gauge the alarm watches (the
relay publishes it with ``PutMetricData``, see :mod:`saga_outbox.cdk.relay_entrypoint`): one
more task when the oldest pending row is older than ``relay_scale_out_age_seconds``, two more
past four times that, one less when it is back under a third of it. N relays are safe (claims
are leased per row and ordered per aggregate), so scaling never breaks order.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from constructs import Construct

from saga_outbox.cdk.config import DeploymentConfig
from saga_outbox.cdk.data import Database, ExistingDatabase
from saga_outbox.cdk.messaging import Messaging
from saga_outbox.cdk.nag import acknowledge
from saga_outbox.cdk.network import Network
from saga_outbox.cdk.relay_image import relay_image_directory
from saga_outbox.cdk.security import EncryptionKey

__all__ = ["FargateRelay"]


class FargateRelay(Construct):
    """:attr:`cluster`, :attr:`task_definition`, :attr:`service`, :attr:`scaling`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        keys: EncryptionKey,
        network: Network,
        database: Database | ExistingDatabase,
        messaging: Messaging,
        scaling_metric: cw.IMetric,
    ) -> None:
        super().__init__(scope, construct_id)
        if database.cluster_host is None or database.secret is None:
            raise ValueError(
                'relay="fargate" connects to the cluster endpoint (LISTEN/NOTIFY must not go through '
                "RDS Proxy): pass ExistingDatabase(cluster=...) with a secret holding username/password"
            )
        self.cluster = ecs.Cluster(
            self, "Cluster", vpc=network.vpc, container_insights_v2=ecs.ContainerInsights.ENABLED
        )
        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "Task",
            cpu=256,
            memory_limit_mib=512,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.ARM64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        self.container = self.task_definition.add_container(
            "relay",
            image=ecs.ContainerImage.from_asset(
                str(relay_image_directory()), platform=ecr_assets.Platform.LINUX_ARM64
            ),
            logging=ecs.LogDrivers.aws_logs(stream_prefix="relay", log_group=keys.log_group(self, "Logs")),
            environment={
                "QUEUE_URL": messaging.queue.queue_url,
                "DATABASE_HOST": database.cluster_host,
                "DATABASE_PORT": database.cluster_port,
                "DATABASE_NAME": database.database_name,
                "OUTBOX_SCHEMA": config.outbox_schema,
                "POWERTOOLS_METRICS_NAMESPACE": config.metrics_namespace,
            },
            secrets={
                "DATABASE_USER": ecs.Secret.from_secrets_manager(database.secret, "username"),
                "DATABASE_PASSWORD": ecs.Secret.from_secrets_manager(database.secret, "password"),
            },
            # ECS sends SIGTERM, then SIGKILL after this: time to finish in-flight batches.
            stop_timeout=Duration.seconds(30),
            readonly_root_filesystem=True,
        )
        messaging.grant_send(self.task_definition.task_role)
        self.task_definition.task_role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": config.metrics_namespace}},
            )
        )
        acknowledge(
            self.task_definition,
            "AwsSolutions-IAM5[Resource::*]",
            "cloudwatch:PutMetricData supports no resource-level permissions (it is limited to the "
            "relay's namespace by condition); ecr:GetAuthorizationToken, used to pull the image, "
            "supports none either.",
        )
        acknowledge(
            self.task_definition,
            "AwsSolutions-ECS2",
            "The container environment holds only non-secret names (queue URL, cluster host, "
            "schema, namespace); the database credentials come from Secrets Manager via ECS secrets.",
        )

        self.security_group = ec2.SecurityGroup(
            self, "TaskSg", vpc=network.vpc, description="saga-outbox Fargate relay"
        )
        database.allow_direct(
            self.security_group, "Fargate relay to Aurora (LISTEN/NOTIFY needs the cluster, not the proxy)"
        )
        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=self.cluster,
            task_definition=self.task_definition,
            desired_count=config.relay_min_tasks,
            security_groups=[self.security_group],
            vpc_subnets=network.app_subnets,
            assign_public_ip=False,
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
            # a new task starts before the old one stops: no gap in relaying during a deploy
            min_healthy_percent=100,
            max_healthy_percent=200,
        )
        age = config.relay_scale_out_age_seconds
        self.scaling = self.service.auto_scale_task_count(
            min_capacity=config.relay_min_tasks, max_capacity=config.relay_max_tasks
        )
        self.scaling.scale_on_metric(
            "ScaleOnOldestPendingAge",
            metric=scaling_metric,
            scaling_steps=[
                appscaling.ScalingInterval(upper=max(1, age // 3), change=-1),
                appscaling.ScalingInterval(lower=age, change=+1),
                appscaling.ScalingInterval(lower=age * 4, change=+2),
            ],
            adjustment_type=appscaling.AdjustmentType.CHANGE_IN_CAPACITY,
            cooldown=Duration.minutes(1),
        )
