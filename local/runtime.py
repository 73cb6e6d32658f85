"""The local runtime: embedded PostgreSQL + moto wired to the same workflow definitions and
handler code that CDK deploys (no second copy of either).

moto's gaps are modelled, not hidden: it has no Docker-free Lambda (our handlers are bridged
in-process, see :mod:`saga_outbox.local.lambda_bridge`), no ``StartSyncExecution`` (Express runs
through ``StartExecution``), and its FIFO dedup ignores deleted messages and the 5-minute window
(the consumers' idempotency is what protects us; the demo and chaos count what they absorb).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
import warnings
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from outbox_relay import (
    InMemoryMetrics,
    Relay,
    RelayOptions,
    RelayThread,
    SqsFifoPublisher,
    embedded_postgres_url,
    migrate,
)
from outbox_relay.embedded import sqlalchemy_url
from saga_outbox._app import SagaApp
from saga_outbox._discovery import load_app
from saga_outbox.workflows import compile_definition

from .event_source import SqsEventSource
from .lambda_bridge import lambda_bridge
from .stream_source import DynamoDbStreamEventSource, sqs_on_failure

__all__ = ["LocalOptions", "LocalRuntime"]

log = logging.getLogger("saga_outbox.local")

ACCOUNT = "123456789012"  # moto's default account
MOTO_CONFIG = {
    "stepfunctions": {"execute_state_machine": True},
    "lambda": {"use_docker": False},
}


@dataclass(frozen=True, kw_only=True)
class LocalOptions:
    """Settings of a local stack; every default works on a fresh machine."""

    database_url: str | None = None  #: None: start an embedded PostgreSQL (outbox_relay.embedded)
    data_dir: str | None = None  #: where the embedded PostgreSQL keeps its files
    region: str = "us-east-1"
    outbox_schema: str = "saga_outbox"
    queue_name: str = "saga-outbox-events.fifo"
    idempotency_table: str = "saga-outbox-idempotency"
    #: seconds before a failed record comes back (short locally, so retries are quick)
    visibility_timeout_seconds: int = 10
    max_receive_count: int = 5
    relay: RelayOptions = field(
        default_factory=lambda: RelayOptions(poll_interval_seconds=0.2, concurrency=4, claim_size=100)
    )
    #: wraps the relay's SQS client (fault injection for chaos runs); gets the moto client
    sqs_wrapper: Any = None
    #: share of dispatcher batches delivered twice (visibility timeout expiry)
    duplicate_rate: float = 0.0
    #: one poller: moto's FIFO receive is not atomic, two pollers could take the same group
    event_source_threads: int = 1
    seed: int | None = None
    #: state machine definitions (workflow name -> ASL JSON with the steps function's ARN
    #: already in place) to run instead of compiling them, e.g. those of a synthesized template
    definitions: Mapping[str, str] | None = None
    #: "dynamodb" adds a DynamoDB outbox table (stream NEW_IMAGE) read by the stream consumer
    #: handler through a local stream event source; the PostgreSQL outbox and relay stay (steps
    #: enqueue there)
    outbox_source: str = "postgres"
    outbox_table: str = "saga-outbox-outbox"
    #: wraps the stream consumer's SQS client (fault injection for chaos runs)
    stream_sqs_wrapper: Any = None
    #: wraps the stream consumer handler (e.g. a crash mid-batch)
    stream_handler_wrapper: Any = None
    #: keep the handlers' Powertools logs (WARNING and up) and EMF metrics off stdout, which
    #: belongs to the demo's table; Lambda would send both to CloudWatch
    quiet_handlers: bool = True


def _warm_moto_models() -> None:
    """Load moto's service models once, before any worker thread runs.

    moto caches them with ``functools.cache``, which does not stop concurrent first calls: the
    first burst of executions would each parse the large botocore JSON models at once, and with
    dozens of threads that stampede takes minutes on two cores."""
    from moto.core.routing import get_service_router

    for service in ("lambda", "stepfunctions", "dynamodb", "sqs", "iam", "sts", "logs"):
        get_service_router(service)


class LocalRuntime:
    """The user's ``app`` (a :class:`~saga_outbox.SagaApp` or ``"module:attr"``) on a local
    stack. Start with :meth:`start` (or as a context manager); :meth:`stop` stops everything."""

    def __init__(self, app: SagaApp | str, options: LocalOptions | None = None) -> None:
        self.app = load_app(app)
        self.options = options or LocalOptions()
        self.engine: sa.Engine | None = None
        self.database_url: str | None = None
        self.queue_url = ""
        self.dlq_url = ""
        self.state_machine_arns: dict[str, str] = {}
        self.relay: Relay | None = None
        self.relay_metrics = InMemoryMetrics()
        self.event_sources: list[SqsEventSource] = []
        self.stream_source: DynamoDbStreamEventSource | None = None
        self.stream_arn = ""
        self.stream_dlq_url = ""
        self._ddb_lock = threading.Lock()
        self.clients: dict[str, Any] = {}
        self._mock: Any = None
        self._bridge: Any = None
        self._relay_thread: RelayThread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> LocalRuntime:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, *, run_workers: bool = True) -> LocalRuntime:
        try:
            self._start_aws()
            self._start_database()
            self._configure_handlers()
            if run_workers:
                self.start_workers()
        except BaseException:
            self.stop()  # a half-started stack must not leak moto's patches or threads
            raise
        return self

    def _start_aws(self) -> None:
        import boto3
        from moto import mock_aws

        for name, value in (("AWS_ACCESS_KEY_ID", "local"), ("AWS_SECRET_ACCESS_KEY", "local")):
            os.environ.setdefault(name, value)  # moto never checks them; botocore wants some
        from ._moto_fixes import apply as fix_moto

        fix_moto()
        self._mock = mock_aws(config=MOTO_CONFIG)  # type: ignore[call-overload]
        self._mock.start()
        _warm_moto_models()
        region = self.options.region
        session = boto3.session.Session(region_name=region)
        self._session = session
        self.clients = {s: session.client(s) for s in ("stepfunctions", "dynamodb", "lambda")}
        # the relay's own client settings, as in Lambda: its attempts fit inside a lease
        self.clients["sqs"] = session.client("sqs", config=SqsFifoPublisher.client_config())
        sqs = self.clients["sqs"]
        dlq_name = self.options.queue_name.removesuffix(".fifo") + "-dlq.fifo"
        self.dlq_url = sqs.create_queue(QueueName=dlq_name, Attributes={"FifoQueue": "true"})["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=self.dlq_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.queue_url = sqs.create_queue(
            QueueName=self.options.queue_name,
            Attributes={
                "FifoQueue": "true",
                "VisibilityTimeout": str(self.options.visibility_timeout_seconds),
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(self.options.max_receive_count)}
                ),
            },
        )["QueueUrl"]
        self.clients["dynamodb"].create_table(
            TableName=self.options.idempotency_table,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        if self.options.outbox_source == "dynamodb":
            self._create_dynamodb_outbox()
        elif self.options.outbox_source != "postgres":
            raise ValueError(
                f"outbox_source must be 'postgres' or 'dynamodb', got {self.options.outbox_source!r}"
            )
        sfn = self.clients["stepfunctions"]
        for wf in self.app.workflows:
            arn = self.function_arn(wf.function)
            if self.options.definitions is not None:
                definition = self.options.definitions[wf.name]
            else:
                definition = json.dumps(compile_definition(wf, function_arns={wf.function: arn}))
            self.state_machine_arns[wf.name] = sfn.create_state_machine(
                name=wf.name,
                definition=definition,
                roleArn=f"arn:aws:iam::{ACCOUNT}:role/saga-outbox-local",
                type=str(wf.kind),
            )["stateMachineArn"]

    def _create_dynamodb_outbox(self) -> None:
        """The outbox table as the CDK construct makes it, and the stream's on-failure queue
        (a standard queue: Lambda's on-failure destinations cannot be FIFO)."""
        ddb = self.clients["dynamodb"]
        table = ddb.create_table(
            TableName=self.options.outbox_table,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
        )["TableDescription"]
        ddb.update_time_to_live(
            TableName=self.options.outbox_table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
        )
        self.stream_arn = table["LatestStreamArn"]
        from botocore.config import Config

        # botocore sends stream calls to the account endpoint named in the stream ARN
        # (<account>.streams-ddb...), which moto does not route; the regional one it does
        self.clients["dynamodbstreams"] = self._session.client(
            "dynamodbstreams", config=Config(account_id_endpoint_mode="disabled")
        )
        self.stream_dlq_url = self.clients["sqs"].create_queue(
            QueueName=self.options.outbox_table + "-stream-failures"
        )["QueueUrl"]

    def dynamodb_outbox(self, **kwargs: Any) -> Any:
        """A :class:`outbox_relay.DynamoDbOutbox` on the local table. Its client is serialized:
        moto's TransactWriteItems is not thread-safe (a cancelled transaction restores a copy
        of the whole table, dropping what another thread wrote meanwhile), DynamoDB's is."""
        from outbox_relay import DynamoDbOutbox

        return DynamoDbOutbox(
            table_name=self.options.outbox_table,
            dynamodb_client=_Serialized(self.clients["dynamodb"], self._ddb_lock),
            **kwargs,
        )

    def _start_database(self) -> None:
        opts = self.options
        self.database_url = (
            sqlalchemy_url(opts.database_url) if opts.database_url else embedded_postgres_url(opts.data_dir)
        )
        self.engine = sa.create_engine(self.database_url, pool_size=20, max_overflow=20, pool_pre_ping=True)
        migrate(self.engine, schema=opts.outbox_schema)
        self.app.migrate(self.engine)

    def _configure_handlers(self) -> None:
        if self.options.quiet_handlers:
            os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
            os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
            warnings.filterwarnings("ignore", message="No application metrics to publish")
            # moto logs every failed task at ERROR (with its whole parse tree); failures are
            # part of the demo and show up in the executions, not as log noise
            logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)
        from saga_outbox.lambdas import runtime as lambda_runtime
        from saga_outbox.lambdas.config import RuntimeConfig
        from saga_outbox.lambdas.handlers import dispatcher, steps

        opts = self.options
        config = RuntimeConfig(
            database_url=self.database_url,
            outbox_schema=opts.outbox_schema,
            queue_url=self.queue_url,
            idempotency_table=opts.idempotency_table,
            state_machine_arns=dict(self.state_machine_arns),
        )
        self.lambda_runtime = lambda_runtime.configure(
            config,
            app=self.app,
            engine=self.engine,
            sfn_client=self.clients["stepfunctions"],
            sqs_client=self.clients["sqs"],
            dynamodb_client=self.clients["dynamodb"],
        )
        self.steps_handler = self._quiet(self.lambda_runtime.cached_handler(steps.make_handler))
        self.dispatcher_handler = self._quiet(self.lambda_runtime.cached_handler(dispatcher.make_handler))
        self._bridge = lambda_bridge({name: self.steps_handler for name in self.app.functions()})
        self._bridge.__enter__()

    def _quiet(self, handler: Any) -> Any:
        """With ``quiet_handlers``, drop the handlers' buffered EMF metrics after each call.

        Powertools keeps one metric set per process; with flushing disabled it still prints
        the set once a metric reaches 100 values, which with many concurrent local
        invocations lands in the middle of the demo's output."""
        if not self.options.quiet_handlers:
            return handler
        from aws_lambda_powertools import Metrics

        shared = Metrics(namespace="SagaOutbox")

        def run(event: dict[str, Any], context: Any) -> Any:
            try:
                return handler(event, context)
            finally:
                shared.clear_metrics()

        return run

    def start_workers(self) -> None:
        """The relay (a thread, as embedded in an app) and the SQS → dispatcher event source."""
        assert self.engine is not None
        opts = self.options
        client = self.clients["sqs"]
        if opts.sqs_wrapper is not None:
            client = opts.sqs_wrapper(client)
        self.relay = Relay(
            engine=self.engine,
            publisher=SqsFifoPublisher(queue_url=self.queue_url, sqs_client=client),
            options=dataclasses.replace(opts.relay, schema=opts.outbox_schema),
            metrics=self.relay_metrics,
        )
        self._relay_thread = self.relay.start_in_thread()
        for i in range(opts.event_source_threads):
            source = SqsEventSource(
                sqs_client=self.clients["sqs"],
                queue_url=self.queue_url,
                handler=self.dispatcher_handler,
                region=opts.region,
                duplicate_rate=opts.duplicate_rate,
                seed=None if opts.seed is None else opts.seed + i,
            )
            self.event_sources.append(source.start())
        if opts.outbox_source == "dynamodb":
            self.start_stream_source()

    def start_stream_source(self) -> DynamoDbStreamEventSource:
        """The DynamoDB outbox's stream → the stream consumer handler (``outbox_source="dynamodb"``)."""
        if self.stream_source is None:
            self.stream_source = self._stream_event_source().start()
        return self.stream_source

    def _stream_event_source(self) -> DynamoDbStreamEventSource:
        from saga_outbox.lambdas.handlers import stream

        client = self.clients["sqs"]
        if self.options.stream_sqs_wrapper is not None:
            client = self.options.stream_sqs_wrapper(client)
        handler = self._quiet(
            stream.make_handler(
                self.lambda_runtime, publisher=SqsFifoPublisher(queue_url=self.queue_url, sqs_client=client)
            )
        )
        if self.options.stream_handler_wrapper is not None:
            handler = self.options.stream_handler_wrapper(handler)
        streams = _Serialized(self.clients["dynamodbstreams"], self._ddb_lock)
        return DynamoDbStreamEventSource(
            streams_client=streams,
            stream_arn=self.stream_arn,
            handler=handler,
            region=self.options.region,
            on_failure=sqs_on_failure(self.clients["sqs"], self.stream_dlq_url),
        )

    def stop_workers(self) -> None:
        for source in self.event_sources:
            source.stop()
        self.event_sources.clear()
        if self.stream_source is not None:
            self.stream_source.stop()
            self.stream_source = None
        if self._relay_thread is not None:
            self._relay_thread.stop()
            self._relay_thread = None
        if self.relay is not None:
            self.relay.close()

    def stop(self) -> None:
        self.stop_workers()
        if self._bridge is not None:
            self._bridge.__exit__(None, None, None)
            self._bridge = None
        if self.engine is not None:
            self.engine.dispose()
        if self._mock is not None:
            self._mock.stop()
            self._mock = None

    # -- queries the demo, the CLI and tests share ----------------------------------------
    def function_arn(self, function: str) -> str:
        """The ARN a Task invokes for a logical function; the bridge answers it in-process."""
        return f"arn:aws:lambda:{self.options.region}:{ACCOUNT}:function:{function}"

    def executions(self, workflow: str) -> list[dict[str, Any]]:
        sfn = self.clients["stepfunctions"]
        out: list[dict[str, Any]] = []
        for page in sfn.get_paginator("list_executions").paginate(
            stateMachineArn=self.state_machine_arns[workflow]
        ):
            out.extend(page["executions"])
        return out

    def execution_statuses(self, workflow: str) -> Counter[str]:
        """How many executions of ``workflow`` are in each status (``RUNNING``, ``SUCCEEDED``...).

        Read from moto's in-process backend: ``ListExecutions`` serializes and parses every
        execution ever started, so a loop polling it grows quadratically over a run (measured:
        ~9% of a 60-order demo's CPU). The API path stays as the fallback."""
        arn = self.state_machine_arns[workflow]
        try:
            from moto.stepfunctions.responses import get_backend

            arn_parts = arn.split(":")
            machine = get_backend(arn_parts[4], arn_parts[3]).describe_state_machine(arn)
            # moto's statuses are str enums: their value is the API's status string
            return Counter(getattr(e.status, "value", str(e.status)) for e in machine.executions)
        except (ImportError, AttributeError, KeyError, IndexError):
            return Counter(str(e["status"]) for e in self.executions(workflow))

    def queue_depth(self) -> int:
        attrs = self.clients["sqs"].get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


class _Serialized:
    """A boto3 client whose calls hold ``lock`` (see :meth:`LocalRuntime.dynamodb_outbox`)."""

    def __init__(self, client: Any, lock: threading.Lock) -> None:
        self._client, self._lock = client, lock

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attr(*args, **kwargs)

        return call
