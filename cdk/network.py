"""VPC: isolated subnets for the database and the VPC-attached functions, optional NAT, flow logs,
and the VPC endpoints the functions need when there is no NAT. Or the user's own VPC, which
is used as given (its endpoints, NAT and flow logs are the user's)."""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from saga_outbox.cdk.security import EncryptionKey

__all__ = ["VPC_CIDR", "Network"]

VPC_CIDR = "10.40.0.0/16"


class Network(Construct):
    """:attr:`vpc`, :attr:`app_subnets` (functions, relay tasks) and :attr:`data_subnets`.

    ``container_endpoints`` adds what a Fargate task in isolated subnets needs to start (ECR API
    and registry, CloudWatch Logs, the S3 gateway for image layers)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        nat_gateways: int,
        keys: EncryptionKey,
        vpc: ec2.IVpc | None = None,
        vpc_subnets: ec2.SubnetSelection | None = None,
        container_endpoints: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        self.owned = vpc is None
        if vpc is not None:
            self.vpc: ec2.IVpc = vpc
            # A user's VPC: its private subnets by default (egress or endpoints are theirs).
            self.app_subnets = vpc_subnets or ec2.SubnetSelection(
                subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS
            )
            self.data_subnets = self.app_subnets
            return
        subnets = [
            ec2.SubnetConfiguration(name="data", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24)
        ]
        if nat_gateways:
            subnets += [
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(
                    name="app", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=22
                ),
            ]
        else:
            subnets.append(
                ec2.SubnetConfiguration(name="app", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=22)
            )
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(VPC_CIDR),
            max_azs=2,
            nat_gateways=nat_gateways,
            subnet_configuration=subnets,
            restrict_default_security_group=True,
        )
        self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(keys.log_group(self, "FlowLogs")),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )
        self.app_subnets = ec2.SubnetSelection(subnet_group_name="app")
        self.data_subnets = ec2.SubnetSelection(subnet_group_name="data")

        # DynamoDB (idempotency) through a free gateway endpoint, always.
        self.vpc.add_gateway_endpoint(
            "DynamoDbEndpoint",
            service=ec2.GatewayVpcEndpointAwsService.DYNAMODB,
            subnets=[self.app_subnets],
        )
        if not nat_gateways:
            # Without NAT the VPC functions reach AWS APIs only through interface endpoints:
            # SQS (relay), Secrets Manager (DB username; secret rotation), CloudWatch (metrics).
            # HTTPS from inside the VPC only (a literal CIDR, so cdk-nag EC23 can evaluate it).
            endpoint_sg = ec2.SecurityGroup(
                self,
                "EndpointSg",
                vpc=self.vpc,
                description="VPC interface endpoints",
                allow_all_outbound=False,
            )
            endpoint_sg.add_ingress_rule(ec2.Peer.ipv4(VPC_CIDR), ec2.Port.tcp(443), "HTTPS from the VPC")
            services = [
                ("SqsEndpoint", ec2.InterfaceVpcEndpointAwsService.SQS),
                ("SecretsManagerEndpoint", ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER),
                ("MonitoringEndpoint", ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_MONITORING),
            ]
            if container_endpoints:
                services += [
                    ("EcrApiEndpoint", ec2.InterfaceVpcEndpointAwsService.ECR),
                    ("EcrDockerEndpoint", ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER),
                    ("LogsEndpoint", ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS),
                ]
                # ECR serves image layers from S3.
                self.vpc.add_gateway_endpoint(
                    "S3Endpoint", service=ec2.GatewayVpcEndpointAwsService.S3, subnets=[self.app_subnets]
                )
            for name, service in services:
                self.vpc.add_interface_endpoint(
                    name,
                    service=service,
                    subnets=self.app_subnets,
                    private_dns_enabled=True,
                    open=False,
                    security_groups=[endpoint_sg],
                )
