"""SNS FIFO: ``PublishBatch`` to a FIFO topic, fanned out to its SQS FIFO subscriptions.

The entry carries the same MessageGroupId (the aggregate) and MessageDeduplicationId (a pure
function of the event id) as an SQS message, so the SQS rules carry over: order per
aggregate, exactly-once fan-out within SNS's 5-minute dedup window, counted late re-sends
beyond it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._aws_errors import LazyClient, LazyClientPublisher, check_call, entry_failure, raise_request_error
from ._lease_guard import LeaseEnding
from .destinations import SNS_MAX_MESSAGE_BYTES
from .exceptions import ConfigurationError
from .publisher import BatchOutcome, OutboundMessage

__all__ = ["SnsFifoPublisher"]

# SNS codes for an entry whose own content is wrong: retrying the same bytes cannot succeed
_INVALID = frozenset(
    {"InvalidParameter", "InvalidParameterValue", "ParameterValueInvalid", "ValidationError"}
)


class SnsFifoPublisher(LazyClientPublisher):
    """Publishes to an SNS FIFO topic (``topic_arn`` ends in ``.fifo``), ≤ 10 entries and
    ≤ 256 KiB per request. The boto3 client is injected or created lazily."""

    max_batch_entries = 10
    max_batch_bytes = SNS_MAX_MESSAGE_BYTES

    def __init__(
        self,
        *,
        topic_arn: str,
        sns_client: Any = None,
        region_name: str | None = None,
        endpoint_url: str | None = None,
    ) -> None:
        if not isinstance(topic_arn, str) or not topic_arn.startswith("arn:") or ":sns:" not in topic_arn:
            raise ConfigurationError(
                f"topic {topic_arn!r} is not an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>.fifo)"
            )
        if not topic_arn.endswith(".fifo"):
            raise ConfigurationError(
                f"topic {topic_arn!r} is not a FIFO topic: per-aggregate order and deduplication "
                "need a topic whose name ends in .fifo"
            )
        self.topic_arn = topic_arn
        self._client = LazyClient("sns", sns_client, region_name, endpoint_url)

    def check(self) -> None:
        attrs = check_call(
            self.client.get_topic_attributes, what=f"SNS topic {self.topic_arn}", TopicArn=self.topic_arn
        ).get("Attributes", {})
        if attrs.get("FifoTopic", "false") != "true":
            raise ConfigurationError(f"topic {self.topic_arn} is not a FIFO topic (FifoTopic != true)")

    def publish_batch(self, messages: Sequence[OutboundMessage]) -> BatchOutcome:
        from botocore.exceptions import BotoCoreError, ClientError

        entries = [
            {
                "Id": str(i),
                "Message": m.body,
                "MessageGroupId": m.group_id,
                "MessageDeduplicationId": m.deduplication_id,
                "MessageAttributes": dict(m.attributes),
            }
            for i, m in enumerate(messages)
        ]
        try:
            response = self.client.publish_batch(TopicArn=self.topic_arn, PublishBatchRequestEntries=entries)
        except (ClientError, BotoCoreError, LeaseEnding) as exc:
            raise_request_error(exc, action="PublishBatch", target=self.topic_arn)
        outcome = BatchOutcome(
            succeeded=[messages[int(e["Id"])].row_id for e in response.get("Successful", [])]
        )
        for failure in response.get("Failed", []):
            code = failure.get("Code", "Unknown")
            outcome.failed.append(
                entry_failure(
                    messages[int(failure["Id"])].row_id,
                    code,
                    failure.get("Message", code),
                    sender_fault=bool(failure.get("SenderFault")),
                    invalid=_INVALID,
                )
            )
        return outcome
