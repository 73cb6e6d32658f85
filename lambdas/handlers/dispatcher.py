"""Dispatcher: SQS FIFO event source -> Step Functions executions (see saga_outbox.lambdas.dispatching).

Records are processed with Powertools ``SqsFifoPartialProcessor(skip_group_on_error=True)``:
a failing record (throttling, any ClientError, a malformed body) is reported in
``batchItemFailures`` together with the later records of its message group (order per
aggregate), while other groups proceed. A malformed body is a poison message: it fails
until the queue's redrive policy moves it to the DLQ. Unknown event types are acknowledged.
Each record's logs carry its ``event_id``, ``aggregate`` and ``trace_id`` (the request's trace,
from ``attributes.AWSTraceHeader``, passed on to ``StartExecution``).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from outbox_relay import InvalidEventError, OutboxEnvelope
from outbox_relay.tracing import trace_id_of

from ..dispatching import Dispatcher, build_routes, execution_trace_header
from ..exceptions import MalformedEvent
from ..runtime import Handler, LazyHandler, Runtime
from ._observability import observability


def make_handler(runtime: Runtime, *, dispatcher: Dispatcher | None = None) -> Handler:
    """Build the dispatcher; needs SAGA_OUTBOX_APP (its routes) and STATE_MACHINE_ARNS (an ARN
    for every routed workflow)."""
    logger, tracer, metrics = observability("dispatcher")
    if dispatcher is None:
        runtime.config.require("state_machine_arns")
        dispatcher = Dispatcher(
            sfn_client=runtime.sfn_client,
            routes=build_routes(runtime.app, runtime.config.state_machine_arns),
            logger=logger,
        )

    def record_handler(record: SQSRecord) -> list[str]:
        try:
            envelope = OutboxEnvelope.from_json(record.body)
        except InvalidEventError as exc:
            raise MalformedEvent(f"SQS message {record.message_id} is not an outbox envelope") from exc
        trace_header = execution_trace_header(record.attributes.aws_trace_header, envelope)
        keys = {"event_id": str(envelope.event_id), "aggregate": envelope.group_id}
        # per thread: the local runtime runs handlers on several threads at once
        logger.thread_safe_append_keys(**keys, trace_id=trace_id_of(trace_header))
        try:
            started = dispatcher.dispatch(envelope, trace_header=trace_header)
        finally:
            logger.thread_safe_remove_keys([*keys, "trace_id"])
        for execution in started:
            metrics.add_metric(
                name="ExecutionAlreadyExisted" if execution.already_existed else "ExecutionStarted",
                unit=MetricUnit.Count,
                value=1,
            )
        return [e.execution_arn for e in started]

    @logger.inject_lambda_context(clear_state=True)
    @tracer.capture_lambda_handler
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        processor = SqsFifoPartialProcessor(skip_group_on_error=True)  # per call: safe under threads
        response = process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
        failures = len(response.get("batchItemFailures", []))
        if failures:
            metrics.add_metric(name="DispatchFailed", unit=MetricUnit.Count, value=failures)
        return dict(response)

    return handler


handler = LazyHandler(make_handler)
