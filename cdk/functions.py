"""The Lambda functions: least-privilege roles, X-Ray, the user's code asset and the layers.

==============  ================================================  =======  ===============================
function        handler                                           in VPC   trigger
==============  ================================================  =======  ===============================
relay           saga_outbox.lambdas.handlers.relay.handler        yes      EventBridge schedule
                                                                           (only with relay="lambda")
steps           saga_outbox.lambdas.handlers.steps.handler        yes      Step Functions (lambda:invoke)
dispatcher      saga_outbox.lambdas.handlers.dispatcher.handler   no       SQS FIFO event source (batch 10)
==============  ================================================  =======  ===============================

Every function runs the user's code asset (``source_dir``) with the Powertools, dependencies
and saga-outbox layers; :meth:`Functions.add_function` adds an app's own function (e.g. a
command API) with the same packaging, role shape and database access.
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
from saga_outbox.cdk.concurrency import ConcurrencyPlan
from saga_outbox.cdk.config import DeploymentConfig
from saga_outbox.cdk.data import Database, ExistingDatabase
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
        database: Database | ExistingDatabase,
        messaging: Messaging,
        idempotency: IdempotencyStore,
        app_spec: str,
        code: lambda_.Code,
        concurrency: ConcurrencyPlan,
        steps_timeout_seconds: int = 30,
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self._keys = keys
        self._network = network
        self._database = database
        self._app_spec = app_spec
        self._concurrency = concurrency
        self.code = code
        self.runtime_layer = packaging.runtime_layer(self, "SagaOutboxLayer")
        self.layers: list[lambda_.ILayerVersion] = [
            packaging.powertools_layer(self, "PowertoolsLayer", version=config.powertools_layer_version),
            packaging.dependencies_layer(self, "DependenciesLayer", layer_arn=config.dependencies_layer_arn),
            self.runtime_layer,
        ]
        #: what a function needs to reach the database through the proxy (IAM auth)
        self.database_environment: dict[str, str] = {
            "DATABASE_SECRET_ARN": database.secret.secret_arn if database.secret else "",
            "DATABASE_PROXY_ENDPOINT": database.proxy_endpoint,
            "DATABASE_NAME": database.database_name,
        }
        self.all: dict[str, lambda_.Function] = {}

        self.relay: lambda_.Function | None = None
        self.relay_schedule: events.Rule | None = None
        if config.relay == "lambda":
            self.relay = self.add_function(
                "Relay",
                "relay",
                environment={
                    "QUEUE_URL": messaging.queue.queue_url,
                    "RELAY_MAX_SECONDS": str(config.relay_max_seconds),
                },
                timeout=Duration.seconds(config.relay_max_seconds + 20),
                reserved_concurrency=concurrency.relay,
            )
            messaging.grant_send(self.relay)
            self.relay_schedule = events.Rule(
                self,
                "RelaySchedule",
                description="Drain the transactional outbox into the SQS FIFO queue",
                schedule=events.Schedule.rate(Duration.minutes(config.relay_schedule_minutes)),
                targets=[targets.LambdaFunction(self.relay, retry_attempts=0)],
            )

        self.steps = self.add_function(
            "Steps",
            "steps",
            environment={"IDEMPOTENCY_TABLE": idempotency.table.table_name, "SAGA_OUTBOX_APP": app_spec},
            # the longest request/response Task's timeout_seconds (workflows.timeouts); every Task
            # waits longer than this, so a slow step fails as a Lambda timeout, not a race
            timeout=Duration.seconds(steps_timeout_seconds),
            reserved_concurrency=concurrency.steps,
        )
        idempotency.grant_use(self.steps)
        self.dispatcher: lambda_.Function | None = None

    def add_dispatcher(
        self, *, messaging: Messaging, state_machines: Mapping[str, sfn.StateMachine]
    ) -> lambda_.Function:
        """The SQS FIFO consumer that starts one execution per event (needs the state machines)."""
        arns = {name: sm.state_machine_arn for name, sm in state_machines.items()}
        fn = self.add_function(
            "Dispatcher",
            "dispatcher",
            environment={
                "STATE_MACHINE_ARNS": Stack.of(self).to_json_string(arns),
                "SAGA_OUTBOX_APP": self._app_spec,
            },
            database=False,
            timeout=DISPATCHER_TIMEOUT,
            reserved_concurrency=self._concurrency.dispatcher,
        )
        fn.add_event_source(
            sources.SqsEventSource(
                messaging.queue,
                batch_size=10,
                report_batch_item_failures=True,
                # Lambda stops polling at this concurrency instead of invoking a throttled
                # function (whose messages would count receives towards the DLQ).
                max_concurrency=self._concurrency.dispatcher,
            )
        )
        for sm in state_machines.values():
            sm.grant_start_execution(fn)
        self.dispatcher = fn
        return fn

    def add_function(
        self,
        construct_id: str,
        name: str,
        *,
        handler: str | None = None,
        environment: Mapping[str, str] | None = None,
        database: bool = True,
        timeout: Duration = DEFAULT_TIMEOUT,
        reserved_concurrency: int | None = None,
        memory_size: int = 512,
    ) -> lambda_.Function:
        """A function on the user's code and the layers, with its own log group and role.

        ``database=True`` puts it in the VPC with the database client security group, the
        proxy environment and ``rds-db:connect``; ``handler`` defaults to saga-outbox's
        ``saga_outbox.lambdas.handlers.<name>.handler``."""
        if name in self.all:
            raise ValueError(f"a function named {name!r} already exists: {sorted(self.all)}")
        env = {**(self.database_environment if database else {}), **(environment or {})}
        fn = self._function(
            construct_id,
            name,
            env=env,
            in_vpc=database,
            client_sg=self._database.client_security_group if database else None,
            timeout=timeout,
            reserved_concurrency=reserved_concurrency,
            handler=handler,
            memory_size=memory_size,
        )
        if database:
            self._database.grant_connect(fn)
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
        memory_size: int = 512,
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
            code=self.code,
            handler=handler or f"saga_outbox.lambdas.handlers.{module}.handler",
            layers=self.layers,
            role=role,
            log_group=log_group,
            memory_size=memory_size,
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
