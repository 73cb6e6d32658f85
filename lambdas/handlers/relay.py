"""Scheduled relay: one bounded ``Relay.drain`` per invocation (EventBridge schedule)."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from outbox_relay import PowertoolsMetricsSink, Publisher, Relay, RelayOptions, RoutedRelay, SqsFifoPublisher
from outbox_relay.routed import publishers_from_spec

from ..runtime import Handler, LazyHandler, Runtime
from ._observability import observability

#: seconds kept free before the Lambda timeout so the last batch is marked published
SAFETY_MARGIN_SECONDS = 5.0


def make_handler(
    runtime: Runtime, *, publisher: Publisher | None = None, options: RelayOptions | None = None
) -> Handler:
    """Build the relay handler; needs the database and QUEUE_URL (unless ``publisher`` is given)."""
    config = runtime.config
    config.require("database")
    if publisher is None:
        config.require("queue_url")
        assert config.queue_url is not None
        publisher = SqsFifoPublisher(queue_url=config.queue_url, sqs_client=runtime.sqs_client)
    logger, tracer, metrics = observability("relay")
    # no LISTEN in a short-lived drain: it polls until idle or out of time
    options = options or RelayOptions(schema=config.outbox_schema, listen=False)
    relay: Any
    # the app's other destinations, set by the CDK construct (docs/destinations.md)
    spec = os.environ.get("OUTBOX_DESTINATIONS")
    if spec:
        publishers = {"sqs": publisher, **publishers_from_spec(spec)}
        relay = RoutedRelay(
            engine=runtime.engine,
            publishers=publishers,
            options=options,
            metrics=PowertoolsMetricsSink(metrics),
        )
    else:
        relay = Relay(
            engine=runtime.engine,
            publisher=publisher,
            options=options,
            metrics=PowertoolsMetricsSink(metrics),
        )

    @logger.inject_lambda_context(clear_state=True)
    @tracer.capture_lambda_handler
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        budget = config.relay_max_seconds
        remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
        if remaining_ms is not None:
            budget = max(0.5, min(budget, remaining_ms() / 1000 - SAFETY_MARGIN_SECONDS))
        result = relay.drain(max_seconds=budget)
        if isinstance(result, dict):  # per destination
            counts = {name: dataclasses.asdict(r) for name, r in result.items()}
        else:
            counts = dataclasses.asdict(result)
        logger.info("relay drained", extra=counts)
        return counts

    return handler


handler = LazyHandler(make_handler)
