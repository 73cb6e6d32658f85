"""Where a replay delivers: an SQS FIFO queue (any :class:`~outbox_relay.publisher.Publisher`),
a workflow started directly through Step Functions, or a handler inside the checkpoint's own
transaction (a projection rebuild)."""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa

from .envelope import (
    OutboxEnvelope,
    envelope_json,
    message_attributes,
    message_group_id,
    message_size,
    replay_deduplication_id,
)
from .exceptions import ConfigurationError, PublishError, ReplayDeliveryError
from .publisher import OutboundMessage, Publisher, request_cause

__all__ = [
    "HandlerDestination",
    "QueueDestination",
    "ReplayDestination",
    "ReplayedEvent",
    "WorkflowDestination",
    "replay_execution_name",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class ReplayedEvent:
    """One archived or live published row, as a replay run re-publishes it."""

    run_id: str
    row_id: int
    event_id: str
    event_type: str
    aggregate_type: str
    aggregate_key: str
    occurred_at: datetime
    payload_json: str
    headers_json: str

    @property
    def body(self) -> str:
        """The envelope with its original event id and the ``replay`` marker."""
        return envelope_json(
            event_id=self.event_id,
            event_type=self.event_type,
            aggregate_type=self.aggregate_type,
            aggregate_key=self.aggregate_key,
            occurred_at=self.occurred_at,
            headers_json=self.headers_json,
            payload_json=self.payload_json,
            replay_json=json.dumps({"run_id": self.run_id}, ensure_ascii=False),
        )

    def envelope(self) -> OutboxEnvelope:
        return OutboxEnvelope.from_json(self.body)


class ReplayDestination(Protocol):
    """Receives each page of a run, in id order (so in commit order per aggregate).

    ``deliver`` runs inside the transaction that then advances the run's checkpoint: it returns
    once every event is accepted, or raises (the page is delivered again on resume)."""

    #: stored with the run: resuming a run with another destination is refused
    name: str

    def check(self) -> None:
        """Fail fast before the first page if the destination is unusable."""

    def deliver(self, conn: sa.Connection, events: Sequence[ReplayedEvent]) -> None: ...


def _pause(attempt: int, *, throttled: bool, base: float) -> None:
    # throttling: the quota refills within a second, so a short fixed wait; else exponential
    ceiling = base * 4 if throttled else min(20.0, base * 2**attempt)
    time.sleep(random.uniform(ceiling / 2, ceiling))


class QueueDestination:
    """Re-publishes through a :class:`Publisher` (``SqsFifoPublisher`` to a replay queue).

    Each message keeps its event id and group (the aggregate) and gets the run's own
    deduplication id (:func:`replay_deduplication_id`), so SQS does not drop it as a repeat of
    the original, while a resumed run's re-send of its last page stays deduplicated (inside the
    5-minute window). A batch holds at most one message per group: a failed entry is retried
    before anything later of its group is sent, so order per aggregate holds."""

    def __init__(
        self, publisher: Publisher, *, max_attempts: int = 8, retry_base_seconds: float = 0.2
    ) -> None:
        if max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be at least 1, got {max_attempts!r}")
        self.publisher = publisher
        self.name = f"queue:{getattr(publisher, 'queue_url', type(publisher).__name__)}"
        self._attempts = max_attempts
        self._base = retry_base_seconds

    def check(self) -> None:
        self.publisher.check()

    def deliver(self, conn: sa.Connection, events: Sequence[ReplayedEvent]) -> None:
        for batch in self._batches([self._message(e) for e in events]):
            self._send(batch)

    def _message(self, e: ReplayedEvent) -> OutboundMessage:
        body = e.body
        attrs = {
            **message_attributes(e.event_type),
            "replay_run_id": {"DataType": "String", "StringValue": e.run_id},
        }
        size = message_size(body, attrs)
        if size > self.publisher.max_batch_bytes:
            raise ReplayDeliveryError(
                f"event {e.event_id} (row {e.row_id}) is {size:,} bytes as a replay, over the "
                f"destination's {self.publisher.max_batch_bytes:,}-byte limit"
            )
        return OutboundMessage(
            row_id=e.row_id,
            event_id=e.event_id,
            group_id=message_group_id(e.aggregate_type, e.aggregate_key),
            deduplication_id=replay_deduplication_id(e.run_id, e.event_id),
            body=body,
            attributes=attrs,
            size=size,
        )

    def _batches(self, messages: list[OutboundMessage]) -> list[list[OutboundMessage]]:
        batches: list[list[OutboundMessage]] = []
        current: list[OutboundMessage] = []
        groups: set[str] = set()
        size = 0
        for m in messages:
            full = len(current) >= self.publisher.max_batch_entries
            if current and (full or m.group_id in groups or size + m.size > self.publisher.max_batch_bytes):
                batches.append(current)
                current, groups, size = [], set(), 0
            current.append(m)
            groups.add(m.group_id)
            size += m.size
        if current:
            batches.append(current)
        return batches

    def _send(self, batch: list[OutboundMessage]) -> None:
        pending = batch
        last = ""
        for attempt in range(self._attempts):
            if attempt:
                _pause(attempt, throttled="throttl" in last.lower(), base=self._base)
            try:
                outcome = self.publisher.publish_batch(pending)
            except PublishError as exc:
                if not exc.retryable:
                    raise ReplayDeliveryError(f"the destination refused a replay batch: {exc}") from exc
                last = f"{exc.cause}: {exc}"
                continue
            failed = {f.row_id: f for f in outcome.failed}
            permanent = [f for f in outcome.failed if f.permanent]
            if permanent:
                f = permanent[0]
                raise ReplayDeliveryError(
                    f"the destination refused row {f.row_id} for good: {f.code}: {f.reason}"
                )
            if not failed:
                return
            pending = [m for m in pending if m.row_id in failed]
            last = "; ".join(f"{f.code}: {f.reason}" for f in failed.values())
        raise ReplayDeliveryError(
            f"{len(pending)} replayed event(s) not accepted after {self._attempts} attempts "
            f"(first: {pending[0].event_id}): {last}"
        )


def replay_execution_name(run_id: str, event_id: str) -> str:
    """A Step Functions execution name per (run, event): a resumed run starting the same event
    again meets its own execution (``ExecutionAlreadyExists``, success), never the original's."""
    run = hashlib.sha256(run_id.encode()).hexdigest()[:16]
    return f"replay-{run}-{event_id}"  # 7 + 16 + 1 + 36 = 60 of the 80 characters allowed


class WorkflowDestination:
    """Starts a state machine per event with the replayed envelope as input, one after another
    in id order (so per aggregate in order), under a deterministic replay-scoped name.

    ``sfn_client`` is a boto3 Step Functions client (moto's locally), created lazily when not
    given. Standard names are idempotent for 90 days, so a resume starts nothing twice; Express
    names are not deduplicated by the service (at-least-once, like every Express start)."""

    def __init__(
        self,
        *,
        state_machine_arn: str,
        sfn_client: Any = None,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        max_attempts: int = 8,
        retry_base_seconds: float = 0.2,
    ) -> None:
        if not isinstance(state_machine_arn, str) or not state_machine_arn.startswith("arn:"):
            raise ConfigurationError(
                f"state machine {state_machine_arn!r} is not an ARN: pass "
                "arn:aws:states:<region>:<account>:stateMachine:<name>"
            )
        if max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be at least 1, got {max_attempts!r}")
        self.state_machine_arn = state_machine_arn
        self.name = f"workflow:{state_machine_arn}"
        self._client = sfn_client
        self._region = region_name
        self._endpoint = endpoint_url
        self._attempts = max_attempts
        self._base = retry_base_seconds
        self._lock = threading.Lock()
        self.started = 0
        self.already_started = 0

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import boto3

                    self._client = boto3.client(
                        "stepfunctions", region_name=self._region, endpoint_url=self._endpoint
                    )
        return self._client

    def check(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.describe_state_machine(stateMachineArn=self.state_machine_arn)
        except (ClientError, BotoCoreError) as exc:
            raise ReplayDeliveryError(f"cannot use state machine {self.state_machine_arn}: {exc}") from exc

    def deliver(self, conn: sa.Connection, events: Sequence[ReplayedEvent]) -> None:
        for e in events:
            self._start(e)

    def _start(self, e: ReplayedEvent) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        name = replay_execution_name(e.run_id, e.event_id)
        last = ""
        for attempt in range(self._attempts):
            if attempt:
                _pause(attempt, throttled="throttl" in last.lower(), base=self._base)
            try:
                self.client.start_execution(stateMachineArn=self.state_machine_arn, name=name, input=e.body)
                self.started += 1
                return
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if code == "ExecutionAlreadyExists":  # this run started it before a crash
                    self.already_started += 1
                    return
                cause = request_cause(code, status)
                if cause not in ("throttled", "server"):
                    raise ReplayDeliveryError(
                        f"StartExecution {name} for event {e.event_id} failed: {code}: {exc}"
                    ) from exc
                last = f"{cause}: {code}"
            except BotoCoreError as exc:
                last = f"connection: {exc}"
        raise ReplayDeliveryError(
            f"StartExecution {name} for event {e.event_id} failed {self._attempts} times: {last}"
        )


class HandlerDestination:
    """Calls ``handler(conn, events)`` in the transaction that advances the checkpoint: what it
    writes commits with the checkpoint or not at all, so each event is applied exactly once per
    run even across a kill (a projection rebuild's destination)."""

    def __init__(self, name: str, handler: Callable[[sa.Connection, Sequence[ReplayedEvent]], None]) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"a handler destination needs a non-empty name, got {name!r}")
        self.name = f"handler:{name}"
        self._handler = handler

    def check(self) -> None:
        return None

    def deliver(self, conn: sa.Connection, events: Sequence[ReplayedEvent]) -> None:
        self._handler(conn, events)
