"""EventBridge: ``PutEvents`` to an event bus. No dedup and no order on the bus.

Each entry's Detail is the outbox envelope, so the event id travels in ``detail.event_id``:
the consumer's dedup key (EventBridge assigns its own ``id`` to every delivery, a new one on
each re-send, so that one cannot be). Entries reported in ``FailedEntryCount`` are retried like
SQS entry failures; request-level failures back the relay off and spend nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ._aws_errors import LazyClient, LazyClientPublisher, check_call, entry_failure, raise_request_error
from ._lease_guard import LeaseEnding
from .destinations import EVENTBRIDGE_MAX_MESSAGE_BYTES, EVENTBRIDGE_MAX_SOURCE_CHARS
from .exceptions import ConfigurationError
from .publisher import BatchOutcome, OutboundMessage

__all__ = ["EventBridgePublisher"]

_INVALID = frozenset({"MalformedDetail", "InvalidArgument", "ValidationException"})
_SOURCE = re.compile(rf"^[A-Za-z0-9._\-/]{{1,{EVENTBRIDGE_MAX_SOURCE_CHARS}}}$")


class EventBridgePublisher(LazyClientPublisher):
    """Publishes to an EventBridge bus (its name or ARN), ≤ 10 entries and ≤ 256 KiB per
    request, ``DetailType`` = the event type, ``Source`` = ``source``."""

    max_batch_entries = 10
    max_batch_bytes = EVENTBRIDGE_MAX_MESSAGE_BYTES

    def __init__(
        self,
        *,
        event_bus: str,
        source: str = "saga-outbox",
        events_client: Any = None,
        region_name: str | None = None,
        endpoint_url: str | None = None,
    ) -> None:
        if not isinstance(event_bus, str) or not event_bus:
            raise ConfigurationError(f"event bus {event_bus!r} must be a bus name or ARN")
        if not isinstance(source, str) or not _SOURCE.match(source) or source.startswith("aws."):
            raise ConfigurationError(
                f"EventBridge source {source!r} is invalid: 1-{EVENTBRIDGE_MAX_SOURCE_CHARS} letters, "
                "digits, '.', '_', '-' or '/', not starting with 'aws.' (reserved for AWS services)"
            )
        self.event_bus = event_bus
        self.source = source
        self._client = LazyClient("events", events_client, region_name, endpoint_url)

    def check(self) -> None:
        check_call(self.client.describe_event_bus, what=f"event bus {self.event_bus}", Name=self.event_bus)

    def publish_batch(self, messages: Sequence[OutboundMessage]) -> BatchOutcome:
        from botocore.exceptions import BotoCoreError, ClientError

        entries = [
            {
                "EventBusName": self.event_bus,
                "Source": self.source,
                "DetailType": m.attributes["event_type"]["StringValue"],
                "Detail": m.body,
            }
            for m in messages
        ]
        try:
            response = self.client.put_events(Entries=entries)
        except (ClientError, BotoCoreError, LeaseEnding) as exc:
            raise_request_error(exc, action="PutEvents", target=self.event_bus)
        outcome = BatchOutcome()
        # results are positional: the i-th result is the i-th entry's
        for msg, result in zip(messages, response.get("Entries", []), strict=False):
            code = result.get("ErrorCode")
            if code:
                outcome.failed.append(
                    entry_failure(msg.row_id, code, result.get("ErrorMessage", code), invalid=_INVALID)
                )
            else:
                outcome.succeeded.append(msg.row_id)
        answered = len(outcome.succeeded) + len(outcome.failed)
        for msg in messages[answered:]:  # no result at all: treat as not sent, nothing spent
            outcome.failed.append(entry_failure(msg.row_id, "InternalFailure", "no result for this entry"))
        return outcome
