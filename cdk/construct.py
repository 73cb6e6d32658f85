"""``SagaOutbox``: deploy your sagas into your own CDK app (in the spirit of ``chalice.cdk.Chalice``).

::

    from aws_cdk import App, Stack
    from saga_outbox.cdk import SagaOutbox

    app = App()
    stack = Stack(app, "Shop")
    sagas = SagaOutbox(stack, "Sagas", app="myshop.sagas:app", source_dir="src")
    api = sagas.add_function("Api", "api", handler="myshop.api.handler")  # your own function

It creates one construct per concern (network, data, messaging, idempotency, functions,
workflows, relay, observability), every one replaceable by yours where it makes sense
(``vpc=``, ``database=``, ``queue=``, ``alarm_topic=``). Nothing in it names a domain: the state
machines come from *your* app's workflows, the functions run saga-outbox's generic handlers
with ``SAGA_OUTBOX_APP=<module:attr>`` and your ``source_dir`` as their code.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from aws_cdk import Duration, Tags
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from saga_outbox._app import SagaApp
from saga_outbox._discovery import load_app
from saga_outbox.cdk import packaging
from saga_outbox.cdk.concurrency import ConcurrencyPlan, plan_concurrency
from saga_outbox.cdk.config import DeploymentConfig
from saga_outbox.cdk.data import Database, ExistingDatabase
from saga_outbox.cdk.destinations import Destinations
from saga_outbox.cdk.dynamodb_outbox import DynamoDbOutboxTable
from saga_outbox.cdk.functions import DEFAULT_TIMEOUT, DISPATCHER_TIMEOUT, Functions
from saga_outbox.cdk.idempotency import IdempotencyStore
from saga_outbox.cdk.messaging import Messaging
from saga_outbox.cdk.network import Network
from saga_outbox.cdk.observability import Observability, oldest_pending_metric
from saga_outbox.cdk.orchestration import Orchestration
from saga_outbox.cdk.reconciler import ScheduledReconciler
from saga_outbox.cdk.relay_service import FargateRelay
from saga_outbox.cdk.security import EncryptionKey, retention_days
from saga_outbox.workflows.timeouts import function_timeout_seconds

__all__ = ["SagaOutbox"]

_OPTION_NAMES = frozenset(f.name for f in fields(DeploymentConfig))
# AWS::RDS::DBProxyTargetGroup takes no Tags (CloudFormation rejects them: F3002).
_UNTAGGABLE = ["AWS::RDS::DBProxyTargetGroup"]


class SagaOutbox(Construct):
    """The saga-outbox runtime for one :class:`~saga_outbox.SagaApp`.

    :param app: ``"module:attr"`` of your app, imported at synth from ``source_dir`` (to compile
        its workflows) and at cold start by the handlers; or a :class:`SagaApp` together with
        ``app_spec``, the ``module:attr`` the handlers import.
    :param source_dir: your code, deployed as the functions' asset (minus
        :data:`~saga_outbox.cdk.packaging.DEFAULT_EXCLUDES` and ``exclude``).
    :param vpc: your VPC (functions and database go into ``vpc_subnets``, default its private
        subnets with egress); default: a VPC of its own, see :class:`~saga_outbox.cdk.network.Network`.
    :param database: your proxy/secret (:class:`~saga_outbox.cdk.data.ExistingDatabase`);
        default: Aurora Serverless v2 behind RDS Proxy.
    :param queue: your SQS FIFO queue; default: one with a FIFO DLQ.
    :param alarm_topic: where alarms go; default: an encrypted topic of its own.
    :param relay: ``"lambda"`` (scheduled drain), ``"fargate"`` (LISTEN/NOTIFY service on the
        cluster endpoint) or ``"none"`` (your app embeds the relay).
    :param dynamodb_outbox: also deploy a DynamoDB outbox table with its stream consumer
        (:class:`~saga_outbox.cdk.dynamodb_outbox.DynamoDbOutboxTable`, ``docs/dynamodb.md``);
        grant your writers with ``sagas.dynamodb_outbox.grant_write(fn)``.
    :param config: a whole :class:`DeploymentConfig`; ``**options`` override its fields
        (``connection_budget=``, ``steps_reserved_concurrency=``, ``metrics_namespace=`` ...),
        validated by it. ``region``/``account`` belong to your Stack and are ignored here.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        app: str | SagaApp,
        source_dir: str | Path,
        app_spec: str | None = None,
        exclude: Sequence[str] | None = None,
        vpc: ec2.IVpc | None = None,
        vpc_subnets: ec2.SubnetSelection | None = None,
        database: ExistingDatabase | None = None,
        queue: sqs.IQueue | None = None,
        alarm_topic: sns.ITopic | None = None,
        relay: str | None = None,
        dynamodb_outbox: bool = False,
        config: DeploymentConfig | None = None,
        destination_resources: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(scope, construct_id)
        unknown = sorted(set(options) - _OPTION_NAMES)
        if unknown:
            raise TypeError(f"SagaOutbox got unknown option(s) {unknown}; known: {sorted(_OPTION_NAMES)}")
        if relay is not None:
            options["relay"] = relay
        if database is not None and not isinstance(database, ExistingDatabase):
            raise TypeError("database= takes a saga_outbox.cdk.ExistingDatabase")
        self.config = replace(config or DeploymentConfig(), **options)
        self.app, self.app_spec = _resolve_app(app, app_spec, Path(source_dir))
        cfg = self.config
        self.concurrency: ConcurrencyPlan = plan_concurrency(cfg)
        Tags.of(self).add("project", "saga-outbox", exclude_resource_types=_UNTAGGABLE)

        self.keys = EncryptionKey(self, "Encryption", retention=retention_days(cfg.log_retention_days))
        self.network = Network(
            self,
            "Network",
            nat_gateways=cfg.nat_gateways,
            keys=self.keys,
            vpc=vpc,
            vpc_subnets=vpc_subnets,
            container_endpoints=cfg.relay == "fargate",
        )
        self.database: Database | ExistingDatabase = database or Database(
            self, "Data", network=self.network, config=cfg
        )
        self.messaging = Messaging(
            self,
            "Messaging",
            keys=self.keys,
            max_receive_count=cfg.max_receive_count,
            high_throughput=cfg.high_throughput_fifo,
            # AWS: at least 6x the consumer's timeout, so retries inside one batch don't redeliver.
            visibility_timeout=Duration.seconds(DISPATCHER_TIMEOUT.to_seconds() * 6),
            queue=queue,
        )
        # the app's other destinations (app.destination): created, or the user's own
        self.destinations = Destinations(
            self,
            "Destinations",
            keys=self.keys,
            declared=self.app.destinations,
            existing=destination_resources,
        )
        self.idempotency = IdempotencyStore(self, "Idempotency")
        self.functions = Functions(
            self,
            "Functions",
            config=cfg,
            keys=self.keys,
            network=self.network,
            database=self.database,
            messaging=self.messaging,
            idempotency=self.idempotency,
            app_spec=self.app_spec,
            code=packaging.user_code(source_dir, exclude=exclude),
            concurrency=self.concurrency,
            steps_timeout_seconds=function_timeout_seconds(self.app.workflows, function="steps"),
        )
        self.orchestration = Orchestration(
            self, "Workflows", app=self.app, keys=self.keys, functions={"steps": self.functions.steps}
        )
        self.functions.add_dispatcher(
            messaging=self.messaging, state_machines=self.orchestration.state_machines
        )
        self.dynamodb_outbox: DynamoDbOutboxTable | None = None
        if dynamodb_outbox:
            self.dynamodb_outbox = DynamoDbOutboxTable(
                self, "DynamoDbOutbox", functions=self.functions, messaging=self.messaging
            )
        self.relay_service: FargateRelay | None = None
        if cfg.relay == "fargate":
            self.relay_service = FargateRelay(
                self,
                "Relay",
                config=cfg,
                keys=self.keys,
                network=self.network,
                database=self.database,
                messaging=self.messaging,
                scaling_metric=oldest_pending_metric(cfg.metrics_namespace),
            )
        self._wire_destinations()
        self.observability = Observability(
            self,
            "Observability",
            config=cfg,
            keys=self.keys,
            messaging=self.messaging,
            state_machines=self.orchestration.state_machines,
            state_machine_kinds=self.orchestration.kinds,
            state_machine_logs=self.orchestration.log_groups,
            functions=self.functions.all,
            topic=alarm_topic,
        )
        if self.dynamodb_outbox is not None:
            self.dynamodb_outbox.add_alarms(self.observability.topic)
        self.reconciler: ScheduledReconciler | None = None
        if cfg.reconciler:  # reconciler=False turns it off; reconcile_every_minutes=N paces it
            self.reconciler = ScheduledReconciler(
                self,
                "Reconciler",
                config=cfg,
                functions=self.functions,
                concurrency=self.concurrency,
                app_spec=self.app_spec,
                orchestration=self.orchestration,
                observability=self.observability,
            )

    def _wire_destinations(self) -> None:
        """The relay (function or service) publishes every destination: grants and the
        ``OUTBOX_DESTINATIONS`` it builds its publishers from."""
        env = self.destinations.environment
        if not env:
            return
        if self.functions.relay is not None:
            self.destinations.grant_publish(self.functions.relay)
            for key, value in env.items():
                self.functions.relay.add_environment(key, value)
        if self.relay_service is not None:
            self.destinations.grant_publish(self.relay_service.task_definition.task_role)
            for key, value in env.items():
                self.relay_service.container.add_environment(key, value)

    # -- accessors ---------------------------------------------------------------------------
    @property
    def steps_function(self) -> lambda_.Function:
        return self.functions.steps

    @property
    def dispatcher_function(self) -> lambda_.Function:
        assert self.functions.dispatcher is not None
        return self.functions.dispatcher

    @property
    def relay_function(self) -> lambda_.Function | None:
        """The scheduled relay (``relay="lambda"`` only)."""
        return self.functions.relay

    @property
    def all_functions(self) -> Mapping[str, lambda_.Function]:
        """Every function by logical name, yours from :meth:`add_function` included."""
        return dict(self.functions.all)

    @property
    def state_machines(self) -> Mapping[str, sfn.StateMachine]:
        return dict(self.orchestration.state_machines)

    def state_machine(self, workflow: str) -> sfn.StateMachine:
        try:
            return self.orchestration.state_machines[workflow]
        except KeyError:
            raise KeyError(f"no state machine for {workflow!r}; have {sorted(self.state_machines)}") from None

    @property
    def queue(self) -> sqs.IQueue:
        return self.messaging.queue

    @property
    def dead_letter_queue(self) -> sqs.IQueue | None:
        return self.messaging.dead_letter_queue

    @property
    def idempotency_table(self) -> dynamodb.TableV2:
        return self.idempotency.table

    @property
    def alarm_topic(self) -> sns.ITopic:
        return self.observability.topic

    @property
    def alarms(self) -> Mapping[str, cw.Alarm]:
        return dict(self.observability.alarms)

    @property
    def vpc(self) -> ec2.IVpc:
        return self.network.vpc

    @property
    def database_environment(self) -> Mapping[str, str]:
        """``DATABASE_SECRET_ARN``/``DATABASE_PROXY_ENDPOINT``/``DATABASE_NAME`` for your functions."""
        return dict(self.functions.database_environment)

    def grant_database_connect(self, grantee: iam.IGrantable) -> None:
        """``rds-db:connect`` through the proxy and read of the secret's username."""
        self.database.grant_connect(grantee)

    def add_function(
        self,
        construct_id: str,
        name: str,
        *,
        handler: str,
        environment: Mapping[str, str] | None = None,
        database: bool = True,
        timeout: Duration = DEFAULT_TIMEOUT,
        reserved_concurrency: int | None = None,
    ) -> lambda_.Function:
        """Your own function on your code and saga-outbox's layers (e.g. a command API that
        writes business rows and outbox events in one transaction). With ``database=True`` it
        joins the VPC and may connect through the proxy; size ``app_connections`` for it.
        It gets the same Errors/Throttles alarms as saga-outbox's functions."""
        fn = self.functions.add_function(
            construct_id,
            name,
            handler=handler,
            environment={"SAGA_OUTBOX_APP": self.app_spec, **(environment or {})},
            database=database,
            timeout=timeout,
            reserved_concurrency=reserved_concurrency,
        )
        self.observability.alarm_function(name, fn)
        return fn


def _resolve_app(app: str | SagaApp, app_spec: str | None, source_dir: Path) -> tuple[SagaApp, str]:
    """The checked app object and the ``module:attr`` the handlers import at cold start."""
    if isinstance(app, SagaApp):
        if not app_spec:
            raise ValueError(
                "app= is a SagaApp object: also pass app_spec='module:attr', the name the Lambda "
                "handlers import it by (SAGA_OUTBOX_APP)"
            )
        spec, loaded = app_spec, load_app(app)
    elif isinstance(app, str):
        if app_spec and app_spec != app:
            raise ValueError(f"app={app!r} and app_spec={app_spec!r} disagree; pass one")
        spec = app
        with _importable(source_dir):
            loaded = load_app(app)
    else:
        raise TypeError(f"app= takes 'module:attr' or a SagaApp, got {type(app).__name__}")
    module = spec.partition(":")[0]
    relative = Path(*module.split("."))
    if not (
        (source_dir / relative).with_suffix(".py").is_file()
        or (source_dir / relative / "__init__.py").is_file()
    ):
        raise ValueError(
            f"module {module!r} of app {spec!r} is not in source_dir {str(source_dir)!r}: "
            "the functions could not import it at cold start"
        )
    return loaded, spec


@contextlib.contextmanager
def _importable(source_dir: Path) -> Iterator[None]:
    """``source_dir`` first on ``sys.path`` while the app is imported (as in Lambda's /var/task)."""
    path = str(source_dir.resolve())
    sys.path.insert(0, path)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(path)
