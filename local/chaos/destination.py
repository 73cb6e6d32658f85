"""``saga-outbox chaos --destination sns|eventbridge|kinesis``: the probe events are also routed
to a second destination, published by its own relay (in this process, with entry failures and
throttling injected at the run's rates), read back, and checked with the same keys as SQS.

Which invariants apply depends on the service (docs/destinations.md): every destination must
lose nothing and kill no row; duplicates are checked where the service deduplicates (SNS
FIFO), order where it orders (SNS FIFO per group, Kinesis per partition key).
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from typing import Any

import sqlalchemy as sa

from outbox_relay import (
    Destination,
    EventBridgePublisher,
    KinesisPublisher,
    Publisher,
    Relay,
    RelayOptions,
    SnsFifoPublisher,
)
from outbox_relay.destination_testing import FaultyDestinationClient

__all__ = ["INVARIANTS", "KINDS", "SecondDestination"]

KINDS = ("sns", "eventbridge", "kinesis")
#: per kind: invariant -> "checked" or why not
INVARIANTS: dict[str, dict[str, str]] = {
    "sns": {"lost": "checked", "dead_rows": "checked", "duplicates": "checked", "order": "checked"},
    "eventbridge": {
        "lost": "checked",
        "dead_rows": "checked",
        "duplicates": "not applicable: EventBridge does not deduplicate (consumers dedup on detail.event_id)",
        "order": "not applicable: EventBridge does not order",
    },
    "kinesis": {
        "lost": "checked",
        "dead_rows": "checked",
        "duplicates": "not applicable: Kinesis does not deduplicate (consumers dedup on event_id)",
        "order": "checked",
    },
}


class SecondDestination:
    """The second destination of a chaos run: its resource in moto, its relay thread, its
    reader (draining the subscription / rule target queue as it fills: moto's SQS scans the
    whole queue per send), and its check."""

    def __init__(
        self,
        kind: str,
        *,
        clients: Any,
        engine: sa.Engine,
        schema: str,
        run_id: str,
        entry_failure_rate: float,
        throttle_rate: float,
        seed: int,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"--destination must be one of {', '.join(KINDS)}, got {kind!r}")
        self.kind = kind
        self.destination = Destination(name=f"chaos-{kind}", kind=kind)  # type: ignore[arg-type]
        self._clients = clients
        self._engine = engine
        self._schema = schema
        self._run_id = run_id
        self._rates = (entry_failure_rate, throttle_rate, seed)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.received: list[dict[str, Any]] = []  # envelopes, in receipt order
        self._queue_url: str | None = None
        self._stream: str | None = None
        self.client: FaultyDestinationClient | None = None

    # -- set-up -------------------------------------------------------------------------------
    def _target_queue(self, name: str, fifo: bool) -> tuple[str, str]:
        sqs = self._clients("sqs")
        attrs = {"FifoQueue": "true"} if fifo else {}
        url = sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, arn

    def _publisher(self) -> Publisher:
        rid = self._run_id
        if self.kind == "sns":
            sns = self._clients("sns")
            topic = sns.create_topic(Name=f"chaos-{rid}.fifo", Attributes={"FifoTopic": "true"})["TopicArn"]
            self._queue_url, qarn = self._target_queue(f"chaos-{rid}-fanout.fifo", fifo=True)
            sns.subscribe(
                TopicArn=topic, Protocol="sqs", Endpoint=qarn, Attributes={"RawMessageDelivery": "true"}
            )
            self.client = self._faulty(sns)
            return SnsFifoPublisher(topic_arn=topic, sns_client=self.client)
        if self.kind == "eventbridge":
            events = self._clients("events")
            bus = f"chaos-{rid}"
            events.create_event_bus(Name=bus)
            self._queue_url, qarn = self._target_queue(f"chaos-{rid}-bus", fifo=False)
            events.put_rule(
                Name="all", EventBusName=bus, EventPattern=json.dumps({"source": ["saga-outbox"]})
            )
            events.put_targets(Rule="all", EventBusName=bus, Targets=[{"Id": "q", "Arn": qarn}])
            self.client = self._faulty(events)
            return EventBridgePublisher(event_bus=bus, events_client=self.client)
        kinesis = self._clients("kinesis")
        self._stream = f"chaos-{rid}"
        kinesis.create_stream(StreamName=self._stream, ShardCount=2)
        self.client = self._faulty(kinesis)
        return KinesisPublisher(stream_name=self._stream, kinesis_client=self.client)

    def _faulty(self, client: Any) -> FaultyDestinationClient:
        failure, throttle, seed = self._rates
        return FaultyDestinationClient(client, entry_failure_rate=failure, throttle_rate=throttle, seed=seed)

    def start(self) -> None:
        publisher = self._publisher()
        relay = Relay(
            engine=self._engine,
            publisher=publisher,
            options=RelayOptions(
                schema=self._schema,
                destination=self.destination.name,
                listen=False,
                poll_interval_seconds=0.2,
                backoff_base_seconds=0.05,
                backoff_max_seconds=1.0,
            ),
        )
        self._threads = [
            threading.Thread(target=relay.run_forever, args=(self._stop,), name="chaos-dest-relay")
        ]
        if self._queue_url is not None:
            self._threads.append(threading.Thread(target=self._read_queue, name="chaos-dest-reader"))
        for t in self._threads:
            t.daemon = True
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)
        if self._stream is not None:
            self.received = self._read_stream()
        elif self._queue_url is not None:
            self._drain_once()

    # -- reading back ---------------------------------------------------------------------------
    def _drain_once(self) -> int:
        sqs = self._clients("sqs")
        got = sqs.receive_message(QueueUrl=self._queue_url, MaxNumberOfMessages=10).get("Messages", [])
        for m in got:
            body = json.loads(m["Body"])
            self.received.append(body["detail"] if self.kind == "eventbridge" else body)
        if got:
            sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)],
            )
        return len(got)

    def _read_queue(self) -> None:
        while not self._stop.is_set():
            if not self._drain_once():
                time.sleep(0.05)

    def _read_stream(self) -> list[dict[str, Any]]:
        kinesis = self._clients("kinesis")
        out: list[dict[str, Any]] = []
        for shard in kinesis.list_shards(StreamName=self._stream)["Shards"]:
            it = kinesis.get_shard_iterator(
                StreamName=self._stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            while it:
                page = kinesis.get_records(ShardIterator=it, Limit=1000)
                out += [json.loads(r["Data"]) for r in page["Records"]]
                it = page.get("NextShardIterator") if page["Records"] else None
        return out

    # -- the check ----------------------------------------------------------------------------
    def check(self) -> dict[str, Any]:
        with self._engine.connect() as c:
            rows = c.exec_driver_sql(
                f'SELECT event_id::text, aggregate_key, state FROM "{self._schema}".outbox '
                "WHERE destination = %(d)s ORDER BY id",
                {"d": self.destination.name},
            ).all()
        position = {}
        per_group: dict[str, int] = defaultdict(int)
        for event_id, key, _ in rows:
            per_group[key] += 1
            position[event_id] = (key, per_group[key])
        counts: dict[str, int] = defaultdict(int)
        violations, highest = 0, dict[str, int]()
        for env in self.received:
            eid = env["event_id"]
            counts[eid] += 1
            if counts[eid] > 1 or eid not in position:
                continue
            key, pos = position[eid]
            if pos < highest.get(key, 0):
                violations += 1
            highest[key] = max(highest.get(key, 0), pos)
        applies = INVARIANTS[self.kind]
        lost = sum(1 for eid, _, _ in rows if counts.get(eid, 0) == 0)
        # of those, still pending when the run stopped (not yet published, vs published and
        # never delivered): both fail the run, but they are different bugs
        unpublished = sum(1 for eid, _, s in rows if counts.get(eid, 0) == 0 and s == "pending")
        duplicates = sum(n - 1 for n in counts.values() if n > 1)
        dead = sum(1 for _, _, s in rows if s == "dead")
        ok = lost == 0 and dead == 0
        ok = ok and (duplicates == 0 or applies["duplicates"] != "checked")
        ok = ok and (violations == 0 or applies["order"] != "checked")
        client = self.client
        return {
            "name": self.destination.name,
            "kind": self.kind,
            "invariants": applies,
            "rows": len(rows),
            "received": len(self.received),
            "lost": lost,
            "lost_still_pending": unpublished,
            "dead_rows": dead,
            "duplicates": duplicates,
            "order_violations": violations,
            "injected": {
                "entry_failures": client.injected_failures if client else 0,
                "request_faults": client.injected_request_faults if client else 0,
                "calls": client.call_count if client else 0,
            },
            "ok": ok,
        }
