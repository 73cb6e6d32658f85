"""A relay paces itself to the queue's quota when nobody told it a rate.

An SQS FIFO queue in normal throughput mode (FifoThroughputLimit perQueue, also what a queue
created without the attribute has) takes 300 SendMessageBatch calls/s; 16 senders at ~20 ms
per call offer about 800. Each throttled call pauses the whole relay, so an unpaced default
relay published less than a paced one (measured: 2,460 vs 2,930 messages/s against the modelled
quota). In high-throughput mode the quota is per message group and the relay stays unpaced.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import pytest
import sqlalchemy as sa

from outbox_relay import BatchOutcome, OutboundMessage, Relay, RelayOptions, SqsFifoPublisher, enqueue_many

pytestmark = pytest.mark.integration


def test_the_publisher_reads_the_queues_throughput_mode(sqs: Any) -> None:
    normal = sqs.create_queue(QueueName="normal.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    high = sqs.create_queue(
        QueueName="high.fifo",
        Attributes={
            "FifoQueue": "true",
            "FifoThroughputLimit": "perMessageGroupId",
            "DeduplicationScope": "messageGroup",
        },
    )["QueueUrl"]
    paced = SqsFifoPublisher(queue_url=normal, sqs_client=sqs)
    unpaced = SqsFifoPublisher(queue_url=high, sqs_client=sqs)
    assert paced.calls_per_second_quota is None  # nothing is known before check()
    paced.check()
    unpaced.check()
    assert paced.calls_per_second_quota == 300.0
    assert unpaced.calls_per_second_quota is None


class QuotaSink:
    """A destination with a quota of ``quota`` calls/s that records when each call came."""

    max_batch_entries = 10
    max_batch_bytes = 1_048_576

    def __init__(self, quota: float | None) -> None:
        self.calls_per_second_quota: float | None = None
        self._quota = quota
        self.calls: list[float] = []

    def check(self) -> None:
        self.calls_per_second_quota = self._quota

    def publish_batch(self, messages: Sequence[OutboundMessage]) -> BatchOutcome:
        self.calls.append(time.monotonic())
        return BatchOutcome(succeeded=[m.row_id for m in messages])


def _fill(engine: sa.Engine, schema: str, n: int) -> None:
    with engine.begin() as conn:
        enqueue_many(
            conn,
            [
                {"aggregate_type": "a", "aggregate_key": f"k{i}", "event_type": "E", "payload": {"i": i}}
                for i in range(n)
            ],
            schema=schema,
        )


def _drain(engine: sa.Engine, schema: str, sink: QuotaSink, **options: Any) -> None:
    relay = Relay(engine=engine, publisher=sink, options=RelayOptions(schema=schema, listen=False, **options))
    try:
        assert relay.drain(max_seconds=60).remaining == 0
    finally:
        relay.close()


def _busiest_second(calls: list[float]) -> int:
    return max(sum(1 for t in calls if start <= t < start + 1.0) for start in calls)


def test_an_unconfigured_relay_stays_under_the_destinations_quota(engine: sa.Engine, outbox: str) -> None:
    _fill(engine, outbox, 600)  # 60 calls of 10
    sink = QuotaSink(quota=20.0)
    _drain(engine, outbox, sink)
    assert len(sink.calls) == 60
    # paced at 98% of 20/s: at most 20 in any second, plus the pacer's burst of one
    assert _busiest_second(sink.calls) <= 21, _busiest_second(sink.calls)


def test_max_calls_per_second_wins_over_the_quota_and_no_quota_means_unpaced(
    engine: sa.Engine, outbox: str
) -> None:
    _fill(engine, outbox, 600)
    explicit = QuotaSink(quota=20.0)
    _drain(engine, outbox, explicit, max_calls_per_second=10.0)
    assert _busiest_second(explicit.calls) <= 11
    _fill(engine, outbox, 600)
    free = QuotaSink(quota=None)
    _drain(engine, outbox, free)
    # no pacing: the 60 calls go as fast as the database gives rows, far over 20 in a second
    assert _busiest_second(free.calls) > 20
