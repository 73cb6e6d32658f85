"""Aurora PostgreSQL Serverless v2 behind an RDS Proxy (IAM authentication, TLS required), or
the user's existing cluster/proxy (:class:`ExistingDatabase`).

Both give the construct the same surface: ``proxy_endpoint``, ``secret``, ``database_name``,
``client_security_group``, ``grant_connect(grantee)`` for the functions (through the proxy), and
``cluster_host``/``cluster_port``/``allow_direct(peer)`` for the Fargate relay, whose LISTEN
connection must reach the cluster itself (a LISTEN through RDS Proxy pins the session and can
miss notifications)."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Token
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from saga_outbox.cdk.config import DeploymentConfig
from saga_outbox.cdk.nag import acknowledge
from saga_outbox.cdk.network import Network

__all__ = ["ADMIN_USER", "Database", "ExistingDatabase"]

ADMIN_USER = "saga_admin"


class Database(Construct):
    """The cluster, its generated secret (rotated every 30 days) and the proxy the functions use.

    Functions connect to :attr:`proxy_endpoint` as :data:`ADMIN_USER` with an IAM auth token
    (``rds-db:connect`` on the proxy), never with the password.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, network: Network, config: DeploymentConfig
    ) -> None:
        super().__init__(scope, construct_id)
        vpc = network.vpc
        self.database_name = config.database_name
        self.cluster_security_group = ec2.SecurityGroup(
            self,
            "ClusterSg",
            vpc=vpc,
            description="Aurora cluster: only the RDS Proxy",
            allow_all_outbound=False,
        )
        self.proxy_security_group = ec2.SecurityGroup(
            self,
            "ProxySg",
            vpc=vpc,
            description="RDS Proxy: only the VPC-attached functions",
            allow_all_outbound=False,
        )
        self.client_security_group = ec2.SecurityGroup(
            self, "ClientSg", vpc=vpc, description="saga-outbox functions that use the database"
        )
        self.cluster_security_group.add_ingress_rule(
            self.proxy_security_group, ec2.Port.tcp(5432), "RDS Proxy to Aurora"
        )
        self.proxy_security_group.add_egress_rule(
            self.cluster_security_group, ec2.Port.tcp(5432), "RDS Proxy to Aurora"
        )
        self.proxy_security_group.add_ingress_rule(
            self.client_security_group, ec2.Port.tcp(5432), "functions to RDS Proxy"
        )

        readers = [
            rds.ClusterInstance.serverless_v2(f"reader{i + 1}", scale_with_writer=True)
            for i in range(config.aurora_readers)
        ]
        self.cluster = rds.DatabaseCluster(
            self,
            "Cluster",
            engine=rds.DatabaseClusterEngine.aurora_postgres(
                version=rds.AuroraPostgresEngineVersion.VER_17_5
            ),
            credentials=rds.Credentials.from_generated_secret(ADMIN_USER),
            default_database_name=config.database_name,
            writer=rds.ClusterInstance.serverless_v2("writer", enable_performance_insights=True),
            readers=readers,
            serverless_v2_min_capacity=config.aurora_min_acu,
            serverless_v2_max_capacity=config.aurora_max_acu,
            vpc=vpc,
            vpc_subnets=network.data_subnets,
            security_groups=[self.cluster_security_group],
            storage_encrypted=True,
            iam_authentication=True,
            deletion_protection=config.deletion_protection,
            backup=rds.BackupProps(retention=Duration.days(config.backup_retention_days)),
            cloudwatch_logs_exports=["postgresql"],
            copy_tags_to_snapshot=True,
            removal_policy=RemovalPolicy.SNAPSHOT,
        )
        self.secret = self.cluster.secret
        assert self.secret is not None
        self.rotation = self.cluster.add_rotation_single_user(
            automatically_after=Duration.days(30),
            vpc_subnets=network.app_subnets,
        )

        self.proxy = rds.DatabaseProxy(
            self,
            "Proxy",
            proxy_target=rds.ProxyTarget.from_cluster(self.cluster),
            secrets=[self.secret],
            vpc=vpc,
            vpc_subnets=network.data_subnets,
            security_groups=[self.proxy_security_group],
            iam_auth=True,
            require_tls=True,
            db_proxy_name=f"saga-outbox-{config.stage}",
            debug_logging=False,
            idle_client_timeout=Duration.minutes(30),
            max_connections_percent=90,
        )
        self.proxy_endpoint = self.proxy.endpoint
        self.username = ADMIN_USER
        self.cluster_host: str | None = self.cluster.cluster_endpoint.hostname
        self.cluster_port = Token.as_string(self.cluster.cluster_endpoint.port)

        acknowledge(
            self.cluster,
            "AwsSolutions-RDS11",
            "The cluster security group admits only the RDS Proxy (which always listens on 5432 for "
            "PostgreSQL) and, with relay='fargate', the relay tasks; a non-default port adds nothing.",
        )

    def grant_connect(self, grantee: iam.IGrantable) -> None:
        """``rds-db:connect`` through the proxy as :data:`ADMIN_USER`, and read of the secret's username."""
        self.proxy.grant_connect(grantee, ADMIN_USER)
        assert self.secret is not None
        self.secret.grant_read(grantee)

    def allow_direct(self, peer: ec2.ISecurityGroup, description: str) -> None:
        """Admit ``peer`` to the cluster port itself (the Fargate relay's LISTEN connection)."""
        self.cluster_security_group.add_ingress_rule(peer, ec2.Port.tcp(5432), description)


@dataclass(frozen=True, kw_only=True)
class ExistingDatabase:
    """Bring your own database: an RDS Proxy with IAM auth for ``username``, the secret whose
    ``username`` (and, for the Fargate relay, ``password``) field the functions read, and the
    security group the proxy admits (the functions join it). ``cluster`` is needed only for
    ``relay="fargate"``: the relay connects to its endpoint, not to the proxy."""

    proxy: rds.IDatabaseProxy
    secret: secretsmanager.ISecret
    client_security_group: ec2.ISecurityGroup
    database_name: str = "saga"
    username: str = ADMIN_USER
    cluster: rds.IDatabaseCluster | None = None

    def __post_init__(self) -> None:
        if not self.database_name or not self.username:
            raise ValueError("ExistingDatabase needs a database_name and a username")

    @property
    def proxy_endpoint(self) -> str:
        return self.proxy.endpoint

    @property
    def cluster_host(self) -> str | None:
        return self.cluster.cluster_endpoint.hostname if self.cluster is not None else None

    @property
    def cluster_port(self) -> str:
        assert self.cluster is not None
        return Token.as_string(self.cluster.cluster_endpoint.port)

    def grant_connect(self, grantee: iam.IGrantable) -> None:
        self.proxy.grant_connect(grantee, self.username)
        self.secret.grant_read(grantee)

    def allow_direct(self, peer: ec2.ISecurityGroup, description: str) -> None:
        assert self.cluster is not None
        self.cluster.connections.allow_default_port_from(peer, description)
