"""A local stand-in for Lambda's SQS event source mapping.

It polls the queue, hands batches of up to 10 records in the real Lambda SQS event shape to a
handler, deletes what succeeded and leaves ``batchItemFailures`` on the queue, where they come
back after the visibility timeout, as with ReportBatchItemFailures on AWS. ``duplicate_rate``
re-delivers a processed batch now and then, as happens on AWS when a visibility timeout runs
out before the delete: the consumers must absorb it.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .lambda_bridge import LocalLambdaContext

__all__ = ["EventSourceStats", "SqsEventSource", "lambda_sqs_event"]

log = logging.getLogger("saga_outbox.local.event_source")


def _record(message: dict[str, Any], *, queue_arn: str, region: str, receive_count: int) -> dict[str, Any]:
    attrs = message.get("Attributes", {})
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {
            "ApproximateReceiveCount": str(max(receive_count, int(attrs.get("ApproximateReceiveCount", 1)))),
            "SentTimestamp": attrs.get("SentTimestamp", str(int(time.time() * 1000))),
            "SenderId": attrs.get("SenderId", "AIDAIENQZJOLO23YVJ4VO"),
            "ApproximateFirstReceiveTimestamp": attrs.get(
                "ApproximateFirstReceiveTimestamp", str(int(time.time() * 1000))
            ),
            "SequenceNumber": attrs.get("SequenceNumber", "0"),
            "MessageGroupId": attrs.get("MessageGroupId", ""),
            "MessageDeduplicationId": attrs.get("MessageDeduplicationId", ""),
            # Lambda hands the sender's trace on in the record, only when the message has one
            **({"AWSTraceHeader": attrs["AWSTraceHeader"]} if "AWSTraceHeader" in attrs else {}),
        },
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value.get("DataType", "String"),
            }
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": hashlib.md5(message["Body"].encode()).hexdigest(),  # SQS's own checksum, not security
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def lambda_sqs_event(
    messages: list[dict[str, Any]], *, queue_arn: str, region: str, receive_count: int = 1
) -> dict[str, Any]:
    """The event Lambda passes to a function subscribed to an SQS queue."""
    return {
        "Records": [
            _record(m, queue_arn=queue_arn, region=region, receive_count=receive_count) for m in messages
        ]
    }


@dataclass
class EventSourceStats:
    batches: int = 0
    records: int = 0
    failures: int = 0
    handler_errors: int = 0
    duplicate_deliveries: int = 0
    deleted: int = 0


class SqsEventSource:
    """Feeds an SQS queue to a Lambda-style handler on a background thread."""

    def __init__(
        self,
        *,
        sqs_client: Any,
        queue_url: str,
        handler: Callable[[dict[str, Any], Any], Any],
        function_name: str = "dispatcher",
        region: str = "us-east-1",
        batch_size: int = 10,
        idle_wait_seconds: float = 0.05,
        duplicate_rate: float = 0.0,
        seed: int | None = None,
    ) -> None:
        if not 1 <= batch_size <= 10:
            raise ValueError(f"batch_size={batch_size} must be 1..10 (the SQS FIFO event source maximum)")
        self._sqs = sqs_client
        self.queue_url = queue_url
        self._handler = handler
        self._function_name = function_name
        self._region = region
        self._batch_size = batch_size
        self._idle = idle_wait_seconds
        self._duplicate_rate = duplicate_rate
        self._rng = random.Random(seed)
        self.stats = EventSourceStats()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._queue_arn = sqs_client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]

    def start(self) -> SqsEventSource:
        self._thread = threading.Thread(target=self._run, name="sqs-event-source", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def receive(self) -> list[dict[str, Any]]:
        """One ReceiveMessage of up to ``batch_size`` records, with every attribute."""
        messages: list[dict[str, Any]] = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self._batch_size,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        return messages

    def poll_once(self) -> int:
        """Receive one batch, invoke the handler, delete what succeeded; returns records seen."""
        messages = self.receive()
        if not messages:
            return 0
        redelivered = sum(
            1 for m in messages if int(m.get("Attributes", {}).get("ApproximateReceiveCount", 1)) > 1
        )
        if redelivered:
            with self._lock:
                self.stats.duplicate_deliveries += redelivered
        failed = self._invoke(messages, receive_count=1)
        done = [m for m in messages if m["MessageId"] not in failed]
        if done and self._duplicate_rate and self._rng.random() < self._duplicate_rate:
            # the visibility timeout ran out before the delete: Lambda gets the batch again
            with self._lock:
                self.stats.duplicate_deliveries += len(done)
            self._invoke(done, receive_count=2)
        if done:
            self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
            with self._lock:
                self.stats.deleted += len(done)
        return len(messages)

    def _invoke(self, messages: list[dict[str, Any]], *, receive_count: int) -> set[str]:
        event = lambda_sqs_event(
            messages, queue_arn=self._queue_arn, region=self._region, receive_count=receive_count
        )
        with self._lock:
            self.stats.batches += 1
            self.stats.records += len(messages)
        try:
            response = self._handler(event, LocalLambdaContext(function_name=self._function_name))
        except Exception:
            # The whole invocation failed: Lambda returns every record to the queue.
            log.exception("handler %s failed; the batch returns to the queue", self._function_name)
            with self._lock:
                self.stats.handler_errors += 1
            return {m["MessageId"] for m in messages}
        failed = {f["itemIdentifier"] for f in (response or {}).get("batchItemFailures", [])}
        with self._lock:
            self.stats.failures += len(failed)
        return failed

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                seen = self.poll_once()
            except Exception:
                log.exception("event source poll failed")
                seen = 0
            if not seen:
                self._stop.wait(self._idle)
