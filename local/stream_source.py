"""A local stand-in for Lambda's DynamoDB Streams event source mapping, over moto's streams.

It reads each shard from a checkpoint (``TRIM_HORIZON`` at first), hands batches to the handler
in the event shape Lambda builds (``Records[].eventName/dynamodb.Keys/NewImage/SequenceNumber``,
``eventSourceARN``), and then, as the mapping does with ``ReportBatchItemFailures``:

* all records succeeded: the checkpoint moves past the batch;
* some failed: the checkpoint moves to the lowest failed sequence number, and the batch from
  there is retried (the successful records after it come again: the consumer's sends dedup);
* the invocation raised (a crash mid-batch): the whole batch is retried;
* with ``bisect_batch_on_error`` the retried batch is halved each time; a single record still
  failing after ``max_retry_attempts`` goes to the on-failure queue (what Lambda sends: the
  shard and sequence range, not the record) and the shard moves on.

moto differences, modelled here: its ``TransactWriteItems`` restores a deep copy of the table
when a transaction is cancelled, which replaces the shard object an open iterator points to, so
an iterator is taken afresh from the checkpoint on every poll; moto has one shard per table and
never splits it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .lambda_bridge import LocalLambdaContext

__all__ = ["DynamoDbStreamEventSource", "StreamSourceStats", "lambda_dynamodb_event"]

log = logging.getLogger("saga_outbox.local.stream_source")


def _record(raw: dict[str, Any], *, stream_arn: str, region: str) -> dict[str, Any]:
    ddb = dict(raw["dynamodb"])
    created = ddb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):  # boto3 parses it; Lambda passes epoch seconds
        ddb["ApproximateCreationDateTime"] = int(created.timestamp())
    return {
        "eventID": raw.get("eventID", ""),
        "eventName": raw["eventName"],
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": ddb,
        "eventSourceARN": stream_arn,
    }


def lambda_dynamodb_event(records: list[dict[str, Any]], *, stream_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda passes to a function subscribed to a DynamoDB stream."""
    return {"Records": [_record(r, stream_arn=stream_arn, region=region) for r in records]}


@dataclass
class StreamSourceStats:
    batches: int = 0
    records: int = 0
    failures: int = 0  #: records reported in batchItemFailures
    handler_errors: int = 0  #: invocations that raised
    retried_batches: int = 0
    sent_to_on_failure: int = 0


class DynamoDbStreamEventSource:
    """Feeds a table's stream to a Lambda-style handler on a background thread."""

    def __init__(
        self,
        *,
        streams_client: Any,
        stream_arn: str,
        handler: Callable[[dict[str, Any], Any], Any],
        function_name: str = "stream",
        region: str = "us-east-1",
        batch_size: int = 100,
        bisect_batch_on_error: bool = True,
        max_retry_attempts: int = 10,
        on_failure: Callable[[dict[str, Any]], None] | None = None,
        idle_wait_seconds: float = 0.05,
    ) -> None:
        if not 1 <= batch_size <= 10000:
            raise ValueError(f"batch_size={batch_size} must be 1..10000 (the DynamoDB event source range)")
        self._streams = streams_client
        self.stream_arn = stream_arn
        self._handler = handler
        self._function_name = function_name
        self._region = region
        self._batch_size = batch_size
        self._bisect = bisect_batch_on_error
        self._max_retries = max_retry_attempts
        self._on_failure = on_failure
        self._idle = idle_wait_seconds
        self.stats = StreamSourceStats()
        self._checkpoints: dict[str, str | None] = {}  # shard -> next sequence number (None: start)
        self._attempts = 0  # failed attempts at the current checkpoint
        self._limit = batch_size
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> DynamoDbStreamEventSource:
        self._thread = threading.Thread(target=self._run, name="ddb-stream-event-source", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _shards(self) -> list[str]:
        shards = self._streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
        return [s["ShardId"] for s in shards]

    def _read(self, shard: str, limit: int) -> list[dict[str, Any]]:
        checkpoint = self._checkpoints.get(shard)
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard}
        if checkpoint is None:
            kwargs["ShardIteratorType"] = "TRIM_HORIZON"
        else:
            kwargs.update(ShardIteratorType="AT_SEQUENCE_NUMBER", SequenceNumber=checkpoint)
        iterator = self._streams.get_shard_iterator(**kwargs)["ShardIterator"]
        records: list[dict[str, Any]] = self._streams.get_records(ShardIterator=iterator, Limit=limit)[
            "Records"
        ]
        return records

    def pending(self) -> bool:
        """Whether a record past the checkpoint is waiting (what IteratorAge > 0 means)."""
        return any(self._read(shard, 1) for shard in self._shards())

    def poll_once(self) -> int:
        """One batch per shard through the handler; returns the records handed over."""
        seen = 0
        for shard in self._shards():
            records = self._read(shard, self._limit)
            if not records:
                continue
            seen += len(records)
            failed_from = self._invoke(records)
            if failed_from is None:
                self._checkpoints[shard] = str(int(records[-1]["dynamodb"]["SequenceNumber"]) + 1)
                self._attempts, self._limit = 0, self._batch_size
                continue
            moved = failed_from != records[0]["dynamodb"]["SequenceNumber"]
            self._checkpoints[shard] = failed_from
            self.stats.retried_batches += 1
            self._attempts = 1 if moved else self._attempts + 1
            if self._bisect and not moved:
                self._limit = max(1, self._limit // 2)
            if self._attempts > self._max_retries and (self._limit == 1 or not self._bisect):
                self._discard(shard, records[: self._limit])
        return seen

    def _discard(self, shard: str, records: list[dict[str, Any]]) -> None:
        """Retries spent: what Lambda sends to the on-failure destination, and move on."""
        first, last = records[0]["dynamodb"]["SequenceNumber"], records[-1]["dynamodb"]["SequenceNumber"]
        log.error("stream records %s..%s discarded after %d attempts", first, last, self._attempts)
        if self._on_failure is not None:
            self._on_failure(
                {
                    "requestContext": {
                        "condition": "RetryAttemptsExhausted",
                        "approximateInvokeCount": self._attempts,
                    },
                    "DDBStreamBatchInfo": {
                        "shardId": shard,
                        "startSequenceNumber": first,
                        "endSequenceNumber": last,
                        "batchSize": len(records),
                        "streamArn": self.stream_arn,
                    },
                }
            )
        self.stats.sent_to_on_failure += len(records)
        self._checkpoints[shard] = str(int(last) + 1)
        self._attempts, self._limit = 0, self._batch_size

    def _invoke(self, records: list[dict[str, Any]]) -> str | None:
        """The lowest failed sequence number, or None when the whole batch succeeded."""
        event = lambda_dynamodb_event(records, stream_arn=self.stream_arn, region=self._region)
        self.stats.batches += 1
        self.stats.records += len(records)
        try:
            response = self._handler(event, LocalLambdaContext(function_name=self._function_name))
        except Exception:
            log.exception("handler %s failed; the batch is retried", self._function_name)
            self.stats.handler_errors += 1
            return str(records[0]["dynamodb"]["SequenceNumber"])
        failed = [f["itemIdentifier"] for f in (response or {}).get("batchItemFailures", [])]
        self.stats.failures += len(failed)
        if not failed:
            return None
        return min(failed, key=int)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                seen = self.poll_once()
            except Exception:
                log.exception("stream event source poll failed")
                seen = 0
            if not seen:
                self._stop.wait(self._idle)


def sqs_on_failure(sqs_client: Any, queue_url: str) -> Callable[[dict[str, Any]], None]:
    """An on-failure destination that sends the invocation record to an SQS queue."""

    def send(info: dict[str, Any]) -> None:
        sqs_client.send_message(QueueUrl=queue_url, MessageBody=json.dumps(info))

    return send
