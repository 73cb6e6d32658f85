"""Kinesis Data Streams: ``PutRecords``, partition key = the aggregate.

Kinesis keeps order per partition key within a shard, but not between records of one key
inside one request (a failed record may be retried after a later one succeeded). So this
publisher declares ``max_rows_per_group = 1``: the relay then claims at most one row per
aggregate per pass, whatever ``RelayOptions.rows_per_group`` says, and a request carries at
most one record of each aggregate. Kinesis does not deduplicate: consumers dedup on the
envelope's ``event_id``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._aws_errors import LazyClient, LazyClientPublisher, check_call, entry_failure, raise_request_error
from ._lease_guard import LeaseEnding
from .destinations import KINESIS_MAX_MESSAGE_BYTES, KINESIS_MAX_REQUEST_BYTES
from .exceptions import ConfigurationError
from .publisher import BatchOutcome, OutboundMessage

__all__ = ["KinesisPublisher"]


class KinesisPublisher(LazyClientPublisher):
    """Publishes to a stream (``stream_name`` or ``stream_arn``), ≤ 500 records, ≤ 1 MiB per
    record and ≤ 5 MiB per request (``RelayOptions.batch_size`` still caps the entries)."""

    max_batch_entries = 500
    max_batch_bytes = KINESIS_MAX_REQUEST_BYTES
    max_message_bytes = KINESIS_MAX_MESSAGE_BYTES
    max_rows_per_group = 1

    def __init__(
        self,
        *,
        stream_name: str | None = None,
        stream_arn: str | None = None,
        kinesis_client: Any = None,
        region_name: str | None = None,
        endpoint_url: str | None = None,
    ) -> None:
        if bool(stream_name) == bool(stream_arn):
            raise ConfigurationError(
                f"give exactly one of stream_name ({stream_name!r}) and stream_arn ({stream_arn!r})"
            )
        self._target = {"StreamName": stream_name} if stream_name else {"StreamARN": stream_arn}
        self.stream = str(stream_name or stream_arn)
        self._client = LazyClient("kinesis", kinesis_client, region_name, endpoint_url)

    def check(self) -> None:
        check_call(self.client.describe_stream_summary, what=f"Kinesis stream {self.stream}", **self._target)

    def publish_batch(self, messages: Sequence[OutboundMessage]) -> BatchOutcome:
        from botocore.exceptions import BotoCoreError, ClientError

        records = [{"Data": m.body.encode("utf-8"), "PartitionKey": m.group_id} for m in messages]
        try:
            response = self.client.put_records(Records=records, **self._target)
        except (ClientError, BotoCoreError, LeaseEnding) as exc:
            raise_request_error(exc, action="PutRecords", target=self.stream)
        outcome = BatchOutcome()
        results = response.get("Records", [])
        for i, msg in enumerate(messages):  # positional, like the request
            result = results[i] if i < len(results) else {"ErrorCode": "InternalFailure"}
            code = result.get("ErrorCode")
            if code:
                outcome.failed.append(entry_failure(msg.row_id, code, result.get("ErrorMessage", code)))
            else:
                outcome.succeeded.append(msg.row_id)
        return outcome
