"""Command API: Function URL / API Gateway proxy -> order + outbox row
(see examples.orders.api).

``ORDERS_SCHEMA`` (default ``orders``) names the order tables' schema; ``ALLOW_SIMULATION=true``
lets a request carry ``simulate`` failure flags (demos only)."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from saga_outbox.lambdas.handlers._observability import observability
from saga_outbox.lambdas.runtime import Handler, LazyHandler, Runtime

from .api import build_resolver


def make_handler(
    runtime: Runtime, *, orders_schema: str | None = None, allow_simulation: bool | None = None
) -> Handler:
    """Build the command API handler; needs DATABASE_URL (or the IAM trio). ``orders_schema`` and
    ``allow_simulation`` default to ORDERS_SCHEMA and ALLOW_SIMULATION."""
    config = runtime.config
    config.require("database")
    logger, tracer, metrics = observability("command-api")
    engine = runtime.engine
    if orders_schema is None:
        orders_schema = os.environ.get("ORDERS_SCHEMA", "orders")
    if allow_simulation is None:
        allow_simulation = os.environ.get("ALLOW_SIMULATION", "").lower() in {"1", "true", "yes", "on"}

    resolver = build_resolver(
        engine,
        orders_schema=orders_schema,
        outbox_schema=config.outbox_schema,
        allow_simulation=allow_simulation,
    )

    @logger.inject_lambda_context(clear_state=True)
    @tracer.capture_lambda_handler
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        response = dict(resolver.resolve(event, context))
        status = response["statusCode"]
        if status == 202:
            replayed = response["headers"].get("Idempotent-Replayed") == "true"
            metrics.add_metric(
                name="OrderReplayed" if replayed else "OrderPlaced", unit=MetricUnit.Count, value=1
            )
        elif status == 200:
            metrics.add_metric(name="OrderRead", unit=MetricUnit.Count, value=1)
        elif status >= 400:
            metrics.add_metric(name="CommandRejected", unit=MetricUnit.Count, value=1)
            logger.info("command rejected", extra={"status": status, "body": response["body"]})
        return response

    return handler


handler = LazyHandler(make_handler)
