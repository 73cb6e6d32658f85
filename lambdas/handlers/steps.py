"""Steps: every Task of every workflow (actions, compensations, hooks, Express steps).

Two layers of idempotency:

1. Powertools Idempotency (DynamoDB, key = ``[execution, state]`` of the task payload): a
   repeated invocation of the same state in the same execution returns the stored result
   without running the action again. A failed action stores nothing, so a retry re-runs it.
2. The business effect itself is guarded in PostgreSQL by UNIQUE keys (see
   the app's actions, e.g. with :attr:`~saga_outbox.StepContext.effect_key`): this also covers
   Express executions (fresh names, at-least-once),
   expired idempotency records, and a crash between the SQL COMMIT and the DynamoDB write.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer

from outbox_relay.tracing import current_lambda_trace_header, trace_id_of

from ..exceptions import (
    BusinessRuleViolation,
    IdempotencyStoreUnavailable,
    StepInProgress,
    as_rejection,
)
from ..runtime import Handler, LazyHandler, Runtime
from ..tasks import ActionRegistry, StepTask, run_step
from ._observability import observability


def trace_keys(task: StepTask) -> dict[str, str]:
    """The keys every hop logs (event id, aggregate, execution name, trace id) for one step.
    The trace is this invocation's: on AWS the Lambda runtime sets it from the execution's
    trace (``_X_AMZN_TRACE_ID``), locally the Lambda bridge does the same."""
    event = task.event
    return {
        "event_id": str(event.get("event_id", "")),
        "aggregate": f"{event.get('aggregate_type', '')}:{event.get('aggregate_key', '')}",
        "execution_name": task.execution,
        "trace_id": trace_id_of(current_lambda_trace_header()) or "",
    }


#: how long a stored step result answers repeats (Step Functions retries come within minutes)
IDEMPOTENCY_TTL_SECONDS = 24 * 3600


def make_handler(
    runtime: Runtime,
    *,
    registry: ActionRegistry | None = None,
    persistence_store: BasePersistenceLayer | None = None,
) -> Handler:
    """Build the steps handler; needs the database and IDEMPOTENCY_TABLE (unless
    ``persistence_store`` is given). ``registry`` defaults to the app's actions
    (``runtime.app``: SAGA_OUTBOX_APP, checked here at cold start)."""
    config = runtime.config
    config.require("database")
    if persistence_store is None:
        config.require("idempotency_table")
        assert config.idempotency_table is not None
        persistence_store = DynamoDBPersistenceLayer(
            table_name=config.idempotency_table, boto3_client=runtime.dynamodb_client
        )
    # the app's actions, its size limit per event type (ctx.enqueue refuses an event too large
    # for a workflow it starts) and its destinations; an injected registry brings none of them
    limits = routes = None
    if registry is None:
        app = runtime.app
        registry, limits, routes = app.registry(), app.max_event_bytes, app.destinations_for
    logger, tracer, metrics = observability("steps")
    engine = runtime.engine
    idempotency = IdempotencyConfig(
        event_key_jmespath="[execution, state]",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=IDEMPOTENCY_TTL_SECONDS,
    )

    @idempotent_function(
        data_keyword_argument="task", persistence_store=persistence_store, config=idempotency
    )
    def run(*, task: dict[str, Any]) -> dict[str, Any]:
        return run_step(
            task,
            engine=engine,
            registry=registry,
            outbox_schema=config.outbox_schema,
            max_event_bytes=limits,
            destinations_for=routes,
        )

    @logger.inject_lambda_context(clear_state=True)
    @tracer.capture_lambda_handler
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        task = StepTask.from_payload(event)  # MalformedEvent before touching any store
        keys = trace_keys(task)
        # per thread: the local runtime runs many steps at once on moto's execution threads
        logger.thread_safe_append_keys(
            workflow=task.workflow, execution=task.execution, state=task.state, kind=task.kind, **keys
        )
        # X-Ray annotations are indexed: find every step of one event or execution by them
        tracer.put_annotation(key="event_id", value=keys["event_id"])
        tracer.put_annotation(key="execution_name", value=task.execution)
        logger.info("step started")
        idempotency.register_lambda_context(context)
        try:
            result: dict[str, Any] = run(task=dict(event))
        except BusinessRuleViolation as exc:
            metrics.add_metric(name="StepRejected", unit=MetricUnit.Count, value=1)
            logger.info(
                "step failed by a business rule", extra={"error": type(exc).__name__, "reason": str(exc)}
            )
            # reported as "Rejected.<Class>": the saga skips this step's own compensation only
            # for this declared "nothing happened"; every other failure may have committed
            raise as_rejection(exc) from None
        except IdempotencyAlreadyInProgressError as exc:
            raise StepInProgress(f"{task.execution}/{task.state} is already running") from exc
        except IdempotencyPersistenceLayerError as exc:
            raise IdempotencyStoreUnavailable(f"idempotency table unavailable: {exc}") from exc
        metrics.add_metric(name="StepSucceeded", unit=MetricUnit.Count, value=1)
        return result

    return handler


handler = LazyHandler(make_handler)
