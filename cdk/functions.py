"""The four Lambda functions: least-privilege roles, X-Ray, the shared code asset and layers.

==============  ===================================  =======  ==========================================
function        handler                              in VPC   trigger
==============  ===================================  =======  ==========================================
command_api     examples.orders.handler.handler  yes      Function URL (AWS_IAM auth)
relay           saga_outbox.lambdas.handlers.relay.handler        yes      EventBridge schedule
steps           saga_outbox.lambdas.handlers.steps.handler        yes      Step Functions (lambda:invoke)
dispatcher      saga_outbox.lambdas.handlers.dispatcher.handler   no       SQS FIFO event source (batch 10)
==============  ===================================  =======  ==========================================
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from saga_outbox.cdk import packaging
from saga_outbox.cdk.config import DeploymentConfig
from saga_outbox.cdk.data import Database
from saga_outbox.cdk.idempotency import IdempotencyStore
from saga_outbox.cdk.messaging import Messaging
from saga_outbox.cdk.nag import acknowledge
from saga_outbox.cdk.network import Network
from saga_outbox.cdk.security import EncryptionKey

__all__ = ["DISPATCHER_TIMEOUT", "Functions"]

DISPATCHER_TIMEOUT = Duration.seconds(30)
DEFAULT_TIMEOUT = Duration.seconds(15)


class Functions(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        keys: EncryptionKey,
        network: Network,
        database: Database,
        messaging: Messaging,
        idempotency: IdempotencyStore,
        app_spec: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self._keys = keys
        self._network = network
        self._app_spec = app_spec
        self._code = packaging.code_asset()
        self._layers = [
            packaging.powertools_layer(self, "PowertoolsLayer", version=config.powertools_layer_version),
            packaging.dependencies_layer(self, "DependenciesLayer", layer_arn=config.dependencies_layer_arn),
        ]
        db_env = {
            "DATABASE_SECRET_ARN": database.secret.secret_arn if database.secret else "",
            "DATABASE_PROXY_ENDPOINT": database.proxy_endpoint,
            "DATABASE_NAME": database.database_name,
        }
        self.all: dict[str, lambda_.Function] = {}

        self.command_api = self._function(
            "CommandApi",
            "command_api",
            env={**db_env, "ALLOW_SIMULATION": "false"},
            in_vpc=True,
            client_sg=database.client_security_group,
            handler="examples.orders.handler.handler",
        )
        database.grant_connect(self.command_api)
        self.command_api_url = self.command_api.add_function_url(
            auth_type=lambda_.FunctionUrlAuthType.AWS_IAM
        )

        relay_timeout = Duration.seconds(config.relay_max_seconds + 20)
        self.relay = self._function(
            "Relay",
            "relay",
            env={
                **db_env,
                "QUEUE_URL": messaging.queue.queue_url,
                "RELAY_MAX_SECONDS": str(config.relay_max_seconds),
            },
            in_vpc=True,
            client_sg=database.client_security_group,
            timeout=relay_timeout,
            reserved_concurrency=config.relay_reserved_concurrency or None,
        )
        database.grant_connect(self.relay)
        messaging.grant_send(self.relay)
        self.relay_schedule = events.Rule(
            self,
            "RelaySchedule",
            description="Drain the transactional outbox into the SQS FIFO queue",
            schedule=events.Schedule.rate(Duration.minutes(config.relay_schedule_minutes)),
            targets=[targets.LambdaFunction(self.relay, retry_attempts=0)],
        )

        self.steps = self._function(
            "Steps",
            "steps",
            env={**db_env, "IDEMPOTENCY_TABLE": idempotency.table.table_name, "SAGA_OUTBOX_APP": app_spec},
            in_vpc=True,
            client_sg=database.client_security_group,
            timeout=Duration.seconds(30),
        )
        database.grant_connect(self.steps)
        idempotency.grant_use(self.steps)
        self.dispatcher: lambda_.Function | None = None

    def add_dispatcher(
        self, *, messaging: Messaging, state_machines: Mapping[str, sfn.StateMachine]
    ) -> lambda_.Function:
        """The SQS FIFO consumer that starts one execution per event (needs the state machines)."""
        arns = {name: sm.state_machine_arn for name, sm in state_machines.items()}
        fn = self._function(
            "Dispatcher",
            "dispatcher",
            env={
                "STATE_MACHINE_ARNS": Stack.of(self).to_json_string(arns),
                "SAGA_OUTBOX_APP": self._app_spec,
            },
            in_vpc=False,
            timeout=DISPATCHER_TIMEOUT,
        )
        fn.add_event_source(
            sources.SqsEventSource(messaging.queue, batch_size=10, report_batch_item_failures=True)
        )
        for sm in state_machines.values():
            sm.grant_start_execution(fn)
        self.dispatcher = fn
        return fn

    # -- helpers -------------------------------------------------------------------------------
    def _function(
        self,
        construct_id: str,
        module: str,
        *,
        env: Mapping[str, str],
        in_vpc: bool,
        client_sg: ec2.ISecurityGroup | None = None,
        timeout: Duration = DEFAULT_TIMEOUT,
        reserved_concurrency: int | None = None,
        handler: str | None = None,
    ) -> lambda_.Function:
        log_group = self._keys.log_group(self, f"{construct_id}Logs")
        role = iam.Role(
            self,
            f"{construct_id}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"saga-outbox {module} function",
        )
        # Instead of the managed AWSLambdaBasicExecutionRole: write only to this function's log group.
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[log_group.log_group_arn]
            )
        )
        vpc_props: dict[str, object] = {}
        if in_vpc:
            assert client_sg is not None
            vpc_props = {
                "vpc": self._network.vpc,
                "vpc_subnets": self._network.app_subnets,
                "security_groups": [client_sg],
            }
            # Instead of the managed AWSLambdaVPCAccessExecutionRole (same actions).
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=[
                        "ec2:CreateNetworkInterface",
                        "ec2:DescribeNetworkInterfaces",
                        "ec2:DescribeSubnets",
                        "ec2:DeleteNetworkInterface",
                        "ec2:AssignPrivateIpAddresses",
                        "ec2:UnassignPrivateIpAddresses",
                    ],
                    resources=["*"],
                )
            )
            acknowledge(
                role,
                "AwsSolutions-IAM5[Resource::*]",
                "Lambda VPC networking (ec2:CreateNetworkInterface/Describe*/Delete*) and X-Ray "
                "(xray:PutTraceSegments/PutTelemetryRecords) support no resource-level permissions.",
            )
        else:
            acknowledge(
                role,
                "AwsSolutions-IAM5[Resource::*]",
                "X-Ray active tracing (xray:PutTraceSegments/PutTelemetryRecords) supports no "
                "resource-level permissions.",
            )
        fn = lambda_.Function(
            self,
            construct_id,
            description=f"saga-outbox {module}",
            runtime=packaging.RUNTIME,
            architecture=packaging.ARCHITECTURE,
            code=self._code,
            handler=handler or f"saga_outbox.lambdas.handlers.{module}.handler",
            layers=self._layers,
            role=role,
            log_group=log_group,
            memory_size=512,
            timeout=timeout,
            tracing=lambda_.Tracing.ACTIVE,
            reserved_concurrent_executions=reserved_concurrency,
            environment={
                "POWERTOOLS_SERVICE_NAME": self._config.service_name,
                "POWERTOOLS_METRICS_NAMESPACE": self._config.metrics_namespace,
                "OUTBOX_SCHEMA": self._config.outbox_schema,
                **env,
            },
            **vpc_props,  # type: ignore[arg-type]
        )
        self.all[module] = fn
        return fn
