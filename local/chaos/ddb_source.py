"""``saga-outbox chaos --source dynamodb``: the probe events go through the DynamoDB outbox.

The writers put each batch of probe events in ``TransactWriteItems`` (``DynamoDbOutbox``), the
local stream event source feeds moto's stream to the stream consumer handler, and the consumer
publishes to the same SQS FIFO queue, with its own faults: per-entry failures and throttling
on its SQS client (``FaultySqsClient``), and crashes after a batch was sent but before the
handler returned (the batch is redelivered and re-sent: SQS's dedup and the consumers absorb
it). The checker reads the outbox items (commit order = their per-aggregate ``seq``) beside the
PostgreSQL outbox rows, so it reports the same keys. Sagas still start through the scenario's
command, which writes to PostgreSQL (a scenario's ``start`` takes a PostgreSQL connection).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

from outbox_relay.testing import FaultySqsClient

from .history import History
from .options import ChaosOptions

__all__ = ["DynamoDbProbeWriter", "StreamFaults"]

#: probe events per TransactWriteItems (each aggregate adds its counter item: <= 100 items)
EVENTS_PER_TRANSACTION = 10


class _CrashingHandler:
    """The stream consumer dies after publishing, before it answers: Lambda retries the batch."""

    def __init__(self, handler: Callable[..., Any], *, rate: float, seed: int, history: History) -> None:
        self._handler, self._rate, self._history = handler, rate, history
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        response = self._handler(event, context)
        with self._lock:
            crash = self._rng.random() < self._rate
        if crash:
            self._history.count("stream_consumer_crashes")
            raise RuntimeError("chaos: stream consumer killed after sending, before returning")
        return response


class StreamFaults:
    """The consumer's faults, as :class:`~saga_outbox.local.runtime.LocalOptions` fields."""

    def __init__(self, opts: ChaosOptions, history: History) -> None:
        self._opts, self._history = opts, history
        self.clients: list[FaultySqsClient] = []

    def local_options(self) -> dict[str, Any]:
        return {
            "outbox_source": "dynamodb",
            "stream_sqs_wrapper": self._wrap_sqs,
            "stream_handler_wrapper": self._wrap_handler,
        }

    def _wrap_sqs(self, client: Any) -> FaultySqsClient:
        faulty = FaultySqsClient(
            client,
            entry_failure_rate=self._opts.entry_failure_rate,
            throttle_rate=self._opts.throttle_rate,
            seed=self._opts.seed + 11,
        )
        self.clients.append(faulty)
        return faulty

    def _wrap_handler(self, handler: Callable[..., Any]) -> _CrashingHandler:
        return _CrashingHandler(
            handler, rate=self._opts.dispatcher_crash_rate, seed=self._opts.seed + 12, history=self._history
        )


class DynamoDbProbeWriter:
    """Writes probe events to the local DynamoDB outbox and reads them back for the checker."""

    def __init__(self, runtime: Any, faults: StreamFaults, *, event_type: str, aggregate_type: str) -> None:
        self._runtime, self._faults = runtime, faults
        self._outbox = runtime.dynamodb_outbox()
        self._event_type, self._aggregate_type = event_type, aggregate_type
        self.transactions = 0
        self.source: Any = None  #: the stream event source, once started (its stats outlive it)

    def write(self, rng: random.Random, seqs: list[int], count: int) -> None:
        from outbox_relay import OutboxEvent

        for start in range(0, count, EVENTS_PER_TRANSACTION):
            events = []
            for _ in range(min(EVENTS_PER_TRANSACTION, count - start)):
                a = rng.randrange(len(seqs))
                seqs[a] += 1
                events.append(
                    OutboxEvent(
                        aggregate_type=self._aggregate_type,
                        aggregate_key=str(a),
                        event_type=self._event_type,
                        payload={"account": a, "seq": seqs[a], "amount": 1},
                    )
                )
            self._outbox.transact_write([], events)
            self.transactions += 1

    def rows(self) -> list[tuple[str, str, str, str, int]]:
        """``(event_id, group, event_type, state, rank)`` of every event item, as the checker
        reads outbox rows; the state is ``"stream"`` (the table keeps no publish state)."""
        client = self._runtime.clients["dynamodb"]
        rows: list[tuple[str, str, str, str, int]] = []
        for page in client.get_paginator("scan").paginate(TableName=self._runtime.options.outbox_table):
            for item in page["Items"]:
                if item.get("kind", {}).get("S") != "event":
                    continue
                rows.append(
                    (
                        item["event_id"]["S"],
                        item["pk"]["S"],
                        item["event_type"]["S"],
                        "stream",
                        int(item["seq"]["N"]),
                    )
                )
        return rows

    def figures(self) -> dict[str, int]:
        source = self.source
        stats = source.stats if source is not None else None
        faulty = self._faults.clients
        return {
            "ddb_transactions": self.transactions,
            "stream_batches": stats.batches if stats else 0,
            "stream_batch_item_failures": stats.failures if stats else 0,
            "stream_handler_errors": stats.handler_errors if stats else 0,
            "stream_records_discarded": stats.sent_to_on_failure if stats else 0,
            "stream_entry_failures_injected": sum(c.injected_failures for c in faulty),
            "stream_throttles_injected": sum(c.injected_throttles for c in faulty),
        }
