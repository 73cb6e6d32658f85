"""Stream consumer: DynamoDB Streams (the DynamoDB outbox table) -> SQS FIFO.

The batch is published first, as a whole (``outbox_relay.dynamodb.StreamRelay``: requests of
up to 10 entries, one record per aggregate per request, per-aggregate order), then Powertools
``BatchProcessor(event_type=EventType.DynamoDBStreams)`` reports each record that was not
published in ``batchItemFailures`` (Lambda resumes the shard from the lowest one). Messages
carry the same MessageGroupId and MessageDeduplicationId as the PostgreSQL relay's, so the
dispatcher, the workflows and the steps see no difference.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from outbox_relay import PowertoolsMetricsSink, Publisher, SqsFifoPublisher
from outbox_relay.dynamodb import PoisonRecordError, StreamRelay

from ..runtime import Handler, LazyHandler, Runtime
from ._observability import observability


def make_handler(runtime: Runtime, *, publisher: Publisher | None = None) -> Handler:
    """Build the stream consumer; needs QUEUE_URL (unless ``publisher`` is given)."""
    if publisher is None:
        runtime.config.require("queue_url")
        assert runtime.config.queue_url is not None
        publisher = SqsFifoPublisher(queue_url=runtime.config.queue_url, sqs_client=runtime.sqs_client)
    logger, tracer, metrics = observability("stream")
    relay = StreamRelay(publisher=publisher, metrics=PowertoolsMetricsSink(metrics))

    @logger.inject_lambda_context(clear_state=True)
    @tracer.capture_lambda_handler
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        outcome = relay.publish(event.get("Records") or [])
        for number, error in outcome.failed.items():
            # a poison record needs a person; a throttled or failed entry is retried by Lambda
            log = logger.warning if isinstance(error, PoisonRecordError) else logger.info
            if not error.held_back:
                log("stream record not published", extra={"sequence_number": number, "error": str(error)})

        def record_handler(record: DynamoDBRecord) -> None:
            error = outcome.failed.get(str(record.dynamodb.sequence_number if record.dynamodb else ""))
            if error is not None:
                raise error

        # every failure is reported per record, even when all failed (a request-level outage):
        # Lambda then retries from the lowest failed sequence number, as for a partial failure
        processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)
        response = process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
        if outcome.failed:
            metrics.add_metric(name="StreamRecordsFailed", unit=MetricUnit.Count, value=len(outcome.failed))
        return dict(response)

    return handler


handler = LazyHandler(make_handler)
