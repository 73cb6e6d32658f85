"""The outbox's guarantees as a stateful property (issue 11): Hypothesis interleaves writers
(begin, enqueue for a few aggregates, commit or roll back), two real relays (claim → send →
mark with every kind of SQS answer, crashes between send and mark, requests stalled in flight
past their lease and resumed), time passing, retention and ``retry_dead``; after every step it
checks what the outbox promises, and shrinks any failure to a minimal interleaving.

What is real: PostgreSQL (the embedded server), the writer, ``Relay.run_once`` (one step = one
claim/publish/mark round), ``SqsFifoPublisher`` over a boto3 client, moto's SQS. Faults come
from ``outbox_relay.testing.FaultySqsClient`` (its hooks: ``fake_sqs.py``). moto has no
5-minute deduplication window (it dedups only against messages still in the queue), so the
chaos harness's ``SqsDedupModel`` models SQS's: a repeated MessageDeduplicationId within the
window is accepted but dropped, after it it is enqueued again; it records every accepted entry.
Its clock, the relays' clocks and the leases move only when a ``time_passes`` step says so, so
a run is deterministic.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from botocore.exceptions import ReadTimeoutError
from fake_sqs import BROKEN_SENDERS, Crash, RelayFaults, VirtualClock
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from outbox_relay import (
    InMemoryMetrics,
    Publisher,
    Relay,
    RelayOptions,
    SqsFifoPublisher,
    deduplication_id,
    enqueue,
    message_group_id,
    purge_published,
    retry_dead,
)
from outbox_relay.metrics import LEASE_LOST
from outbox_relay.testing import FaultySqsClient, client_error, endpoint_unreachable
from saga_outbox.local.chaos.history import DEDUP_WINDOW_SECONDS, History, SqsDedupModel

pytestmark = pytest.mark.integration

AGGREGATE_TYPE = "acct"
AGGREGATES = ("a", "b", "c")
MAX_WRITERS = 3
LEASE_SECONDS = 30.0
#: relay 0 sends one row per group per pass (the default), relay 1 up to three
ROWS_PER_GROUP = (1, 3)
#: what SQS answers one pass's request (entries_refused: for the groups drawn with it)
OUTCOMES = (
    "accepted",
    "entries_failed",  # every entry InternalError: retryable, spends the rows' attempts
    "entries_refused",  # SenderFault entries: the rows are dead at once
    "throttled",
    "unreachable",
    "server_error",
    "expired_token",
    "answer_lost",  # accepted, then the read times out: the relay cannot know
    "crash_after_send",  # accepted, then the relay dies before marking
)
#: how a request held in flight past its lease ends
RESUMES = ("delivered", "answer_lost", "never_arrived")


@dataclass
class Writer:
    conn: sa.Connection
    txn: sa.Transaction
    events: list[tuple[str, str]] = field(default_factory=list)  # (aggregate, event id)

    @property
    def holds(self) -> set[str]:
        """Aggregates whose group lock this transaction holds (until it ends)."""
        return {aggregate for aggregate, _ in self.events}


class OutboxMachine(RuleBasedStateMachine):
    def __init__(self, engine: sa.Engine, schema: str, sqs: Any, reach: Counter[str] | None = None) -> None:
        super().__init__()
        self.reach: Counter[str] = reach if reach is not None else Counter()
        self.stalls = 0
        self.engine, self.schema = engine, schema
        with engine.begin() as conn:
            conn.exec_driver_sql(f'TRUNCATE "{schema}".outbox, "{schema}".outbox_archive')
        self.clock = VirtualClock()
        self.history = History()
        name = f"prop-{uuid.uuid4().hex[:12]}.fifo"
        self.queue_url = sqs.create_queue(QueueName=name, Attributes={"FifoQueue": "true"})["QueueUrl"]
        self.model = SqsDedupModel(self.history, queue_name=name, clock=self.clock)
        self.model.install()
        self.faults = [RelayFaults() for _ in ROWS_PER_GROUP]
        self.clients = [
            FaultySqsClient(sqs, request_fault=f.before_call, after_send=f.after_call) for f in self.faults
        ]
        self.metrics = [InMemoryMetrics() for _ in ROWS_PER_GROUP]
        self.relays = [
            Relay(
                engine=engine,
                publisher=self.publisher_for(client),
                options=RelayOptions(
                    schema=schema,
                    relay_id=f"relay{i}",
                    rows_per_group=rpg,
                    claim_size=6,  # one SendMessageBatch per pass: a stall holds the whole pass
                    pipelines=1,
                    concurrency=2,
                    listen=False,
                    lease_seconds=LEASE_SECONDS,
                    max_attempts=2,
                    # a row's retry delay and the relay's backoff are real (database) time: keep
                    # them to a microsecond, so the next step always finds them due
                    backoff_base_seconds=1e-6,
                    backoff_max_seconds=1e-6,
                ),
                metrics=metrics,
                clock=self.clock,
            )
            for i, (client, metrics, rpg) in enumerate(
                zip(self.clients, self.metrics, ROWS_PER_GROUP, strict=True)
            )
        ]
        self.stalled: dict[int, threading.Thread] = {}
        self.thread_errors: list[BaseException] = []
        self.writers: dict[int, Writer] = {}
        self.writers_begun = 0
        self.seq = 0
        self.seq_of: dict[str, int] = {}
        self.aggregate_of: dict[str, str] = {}  # committed events only
        self.committed: dict[str, list[str]] = defaultdict(list)  # per aggregate, commit order
        self.rolled_back: set[str] = set()
        self.ever_dead: set[str] = set()
        self.ever_published: set[str] = set()

    def publisher_for(self, client: FaultySqsClient) -> Publisher:
        return SqsFifoPublisher(queue_url=self.queue_url, sqs_client=client)

    # -- writers ---------------------------------------------------------------------------
    @initialize(aggregates=st.lists(st.sampled_from(AGGREGATES), min_size=1, max_size=6))
    def backlog(self, aggregates: list[str]) -> None:
        """Committed events before anything else happens, so that every run has work."""
        self.write(aggregates, True)

    @rule(aggregates=st.lists(st.sampled_from(AGGREGATES), min_size=1, max_size=4), commit=st.booleans())
    def write(self, aggregates: list[str], commit: bool) -> None:
        """A short transaction: begin, enqueue in that order, commit or roll back."""
        self.begin()
        key = self.writers_begun - 1
        for aggregate in aggregates:
            self._enqueue(key, aggregate)
        (self.commit if commit else self.roll_back)(len(self.writers) - 1)

    def _writer(self, pick: int) -> int:
        keys = sorted(self.writers)
        return keys[pick % len(keys)]

    @precondition(lambda self: len(self.writers) < MAX_WRITERS)
    @rule()
    def begin(self) -> None:
        """A transaction that stays open while other steps run."""
        conn = self.engine.connect()
        self.writers[self.writers_begun] = Writer(conn, conn.begin())
        self.writers_begun += 1

    @precondition(lambda self: self.writers)
    @rule(pick=st.integers(0, MAX_WRITERS - 1), which=st.integers(0, len(AGGREGATES) - 1))
    def enqueue_event(self, pick: int, which: int) -> None:
        self._enqueue(self._writer(pick), AGGREGATES[which])

    def _enqueue(self, key: int, aggregate: str) -> None:
        writer = self.writers[key]
        # Another open transaction holding an aggregate's group lock makes enqueue wait for its
        # end (by design, writer.py): one thread cannot wait, so the machine writes the next
        # aggregate that no other transaction holds.
        held = set().union(*(w.holds for k, w in self.writers.items() if k != key))
        free = [a for a in AGGREGATES if a not in held]
        if not free:
            return
        start = AGGREGATES.index(aggregate)
        aggregate = next(a for a in AGGREGATES[start:] + AGGREGATES[:start] if a in free)
        event_id = str(
            enqueue(
                writer.conn,
                aggregate_type=AGGREGATE_TYPE,
                aggregate_key=aggregate,
                event_type="Happened",
                payload={"seq": self.seq},
                schema=self.schema,
            )
        )
        self.seq_of[event_id] = self.seq
        self.seq += 1
        writer.events.append((aggregate, event_id))

    @precondition(lambda self: self.writers)
    @rule(pick=st.integers(0, MAX_WRITERS - 1))
    def commit(self, pick: int) -> None:
        writer = self.writers.pop(self._writer(pick))
        writer.txn.commit()
        writer.conn.close()
        for aggregate, event_id in writer.events:
            self.committed[aggregate].append(event_id)
            self.aggregate_of[event_id] = aggregate

    @precondition(lambda self: self.writers)
    @rule(pick=st.integers(0, MAX_WRITERS - 1))
    def roll_back(self, pick: int) -> None:
        writer = self.writers.pop(self._writer(pick))
        writer.txn.rollback()
        writer.conn.close()
        self.rolled_back.update(event_id for _, event_id in writer.events)

    # -- relays ----------------------------------------------------------------------------
    def _idle(self, pick: int) -> int:
        idle = [i for i in range(len(self.relays)) if i not in self.stalled]
        return idle[pick % len(idle)]

    @precondition(lambda self: len(self.stalled) < len(self.relays))
    @rule(
        pick=st.integers(0, len(ROWS_PER_GROUP) - 1),
        outcome=st.sampled_from(OUTCOMES),
        refused=st.sets(st.sampled_from(AGGREGATES), min_size=1),
    )
    def relay_pass(self, pick: int, outcome: str, refused: set[str]) -> None:
        i = self._idle(pick)
        client, faults = self.clients[i], self.faults[i]
        refused_groups = {message_group_id(AGGREGATE_TYPE, a) for a in refused}
        if outcome == "entries_failed":
            client.entry_failure_rate = 1.0
        elif outcome == "entries_refused":
            client.fail_entry = lambda e: "refused" if e["MessageGroupId"] in refused_groups else None
        elif outcome == "throttled":
            client.throttle_rate = 1.0
        elif outcome == "unreachable":
            faults.request = endpoint_unreachable
        elif outcome == "server_error":
            faults.request = lambda: client_error("InternalError", 500)
        elif outcome == "expired_token":
            faults.request = lambda: client_error("ExpiredToken", 403)
        elif outcome == "answer_lost":
            faults.after_accept = lambda: ReadTimeoutError(endpoint_url=self.queue_url)
        elif outcome == "crash_after_send":
            faults.after_accept = Crash
        try:
            self.relays[i].run_once()
        except Crash:
            assert outcome == "crash_after_send"
        finally:
            client.entry_failure_rate = client.throttle_rate = 0.0
            client.fail_entry = None
            faults.clear()

    def _pass_in_thread(self, i: int) -> None:
        try:
            self.relays[i].run_once()
        except BaseException as exc:  # surfaced by the next invariant check
            self.thread_errors.append(exc)

    @precondition(lambda self: len(self.stalled) < len(self.relays))
    @rule(pick=st.integers(0, len(ROWS_PER_GROUP) - 1))
    def stall_in_flight(self, pick: int) -> None:
        """A pass whose request stays in flight (a slow network, a paused process) until resumed."""
        i = self._idle(pick)
        faults = self.faults[i]
        faults.clear()
        faults.stall = True
        thread = threading.Thread(target=self._pass_in_thread, args=(i,), daemon=True)
        thread.start()
        while not faults.parked.wait(0.002):
            if not thread.is_alive():
                break
        if faults.parked.is_set():
            self.stalled[i] = thread
            self.stalls += 1
        else:  # nothing to claim: the pass ended without a request
            thread.join()
            faults.clear()

    @precondition(lambda self: self.stalled)
    @rule(pick=st.integers(0, len(ROWS_PER_GROUP) - 1), how=st.sampled_from(RESUMES))
    def resume(self, pick: int, how: str) -> None:
        i = sorted(self.stalled)[pick % len(self.stalled)]
        self._resume(i, how)

    def _resume(self, i: int, how: str) -> None:
        faults = self.faults[i]
        if how == "answer_lost":
            faults.after_accept = lambda: ReadTimeoutError(endpoint_url=self.queue_url)
        elif how == "never_arrived":
            faults.request = endpoint_unreachable
        faults.release.set()
        thread = self.stalled.pop(i)
        thread.join(60)
        assert not thread.is_alive(), f"relay{i}'s pass did not end after its request was resumed"
        faults.clear()

    @rule(seconds=st.sampled_from((LEASE_SECONDS + 1, DEDUP_WINDOW_SECONDS + 1)))
    def time_passes(self, seconds: float) -> None:
        """Past the lease (31 s), or past the dedup window as well (301 s)."""
        self.clock.seconds += seconds
        # The leases are database time, which does not jump: end every lease the virtual time
        # has outlived (all of them: each is LEASE_SECONDS long). available_at is left alone.
        with self.engine.begin() as conn:
            conn.exec_driver_sql(
                f"UPDATE \"{self.schema}\".outbox SET lease_expires_at = now() - interval '1 second' "
                "WHERE state = 'pending' AND lease_expires_at > now()"
            )

    # -- operators -------------------------------------------------------------------------
    @rule(keep_event_ids=st.booleans())
    def purge(self, keep_event_ids: bool) -> None:
        purge_published(
            self.engine,
            schema=self.schema,
            older_than=timedelta(0),
            keep_event_ids_for=timedelta(days=7) if keep_event_ids else timedelta(0),
        )

    @rule()
    def revive_dead(self) -> None:
        retry_dead(self.engine, schema=self.schema)

    # -- the guarantees --------------------------------------------------------------------
    def _name(self, event_id: str) -> str:
        return f"seq {self.seq_of.get(event_id, '?')}"

    @invariant()
    def guarantees_hold(self) -> None:
        self.reach["checks (one per step)"] += 1
        if self.thread_errors:
            raise self.thread_errors[0]
        with self.engine.connect() as conn:
            states = conn.exec_driver_sql(
                f"SELECT event_id::text, state FROM \"{self.schema}\".outbox WHERE state <> 'pending'"
            ).all()
        # dead rows are seen before any later step can revive them: invariants run after each
        self.ever_dead.update(e for e, s in states if s == "dead")
        self.ever_published.update(e for e, s in states if s == "published")
        sends = list(self.history.sends)
        accepted = {s.event_id for s in sends}

        stray = [self._name(s.event_id) for s in sends if s.event_id not in self.aggregate_of]
        assert not stray, f"SQS received events no transaction committed (rolled back: {stray})"

        unsent = sorted(self._name(e) for e in self.ever_published - accepted)
        assert not unsent, f"rows marked published that SQS never accepted: {unsent}"

        first_acceptance: dict[str, list[str]] = defaultdict(list)
        seen: set[str] = set()
        live: dict[str, list[float]] = defaultdict(list)
        for s in sends:
            aggregate = self.aggregate_of[s.event_id]
            assert s.deduplication_id == deduplication_id(s.event_id), (
                f"{self._name(s.event_id)} sent with MessageDeduplicationId {s.deduplication_id!r}"
            )
            assert s.group_id == message_group_id(AGGREGATE_TYPE, aggregate)
            if s.event_id not in seen:
                seen.add(s.event_id)
                first_acceptance[aggregate].append(s.event_id)
            if s.outcome != "dedup_dropped":
                live[s.event_id].append(s.at)
        for event_id, times in live.items():
            close = [b - a for a, b in itertools.pairwise(times) if b - a < DEDUP_WINDOW_SECONDS]
            assert not close, f"{self._name(event_id)} delivered twice within the dedup window: {close}"

        # A row that died lets its group go on; retry_dead sends it later, after rows published
        # meanwhile (documented in operations.retry_dead): such rows are outside the order.
        for aggregate, events in self.committed.items():
            expected = [self._name(e) for e in events if e not in self.ever_dead]
            got = [self._name(e) for e in first_acceptance[aggregate] if e not in self.ever_dead]
            assert got == expected[: len(got)], (
                f"aggregate {aggregate}: first acceptances {got} are not its commit order {expected}"
            )

    def teardown(self) -> None:
        # Hypothesis calls teardown from a ``finally``: after a failed step, only clean up, so
        # that the failure shrinks as itself and is not reported a second time from here.
        failed = sys.exc_info()[1] is not None
        self.reach["examples"] += 1
        try:
            if not failed:
                self._settle()
        finally:
            self._close()

    def _settle(self) -> None:
        """Open transactions end unfinished (rolled back), stalled requests arrive, faults stop,
        every lease ends, dead rows are revived: then one drain must deliver everything."""
        while self.writers:
            self.roll_back(0)
        for i in sorted(self.stalled):
            self._resume(i, "delivered")
        self.time_passes(LEASE_SECONDS + 1)
        self.revive_dead()
        relay = self.relays[0]
        for _ in range(50):
            relay.drain(max_seconds=60)
            if relay.pending_count() == 0:
                break
            time.sleep(0.001)  # a row's microsecond retry delay
        self.guarantees_hold()
        accepted = {s.event_id for s in self.history.sends}
        lost = sorted(self._name(e) for e in self.aggregate_of if e not in accepted)
        assert not lost, f"committed events never accepted by SQS after the final drain: {lost}"
        self._report_coverage()

    def _report_coverage(self) -> None:
        """What the example reached, summed over a run into ``self.reach`` (make fuzz prints it)."""
        outcomes = [s.outcome for s in self.history.sends]
        self.reach["examples settled"] += 1
        self.reach["events committed"] += len(self.aggregate_of)
        self.reach["events rolled back"] += len(self.rolled_back)
        self.reach["entries accepted by SQS"] += len(outcomes)
        self.reach["re-sends dropped inside the window"] += outcomes.count("dedup_dropped")
        self.reach["re-sends delivered after the window"] += outcomes.count("late_enqueued")
        self.reach["rows whose lease another relay took"] += int(
            sum(m.counters.get(LEASE_LOST, 0) for m in self.metrics)
        )
        self.reach["rows that died"] += len(self.ever_dead)
        self.reach["examples with a stalled request"] += int(self.stalls > 0)

    def _close(self) -> None:
        for faults in self.faults:
            faults.release.set()
        for thread in self.stalled.values():
            thread.join(60)
        for writer in self.writers.values():
            writer.conn.close()
        for relay in self.relays:
            relay.close()
        self.model.uninstall()


def test_the_outbox_guarantees_hold_in_every_interleaving(engine, outbox, sqs, hypothesis_settings):
    reach: Counter[str] = Counter()
    started = time.monotonic()
    run_state_machine_as_test(lambda: OutboxMachine(engine, outbox, sqs, reach), settings=hypothesis_settings)
    # Hypothesis's own statistics do not cover run_state_machine_as_test: say what was run
    # (shown with -s, as make fuzz does)
    print(f"\nstateful outbox property, {time.monotonic() - started:.0f} s:")
    for name, n in reach.items():
        print(f"  {name}: {n}")


# The checks catch what they are for: the same machine over deliberately broken senders.
@pytest.mark.parametrize(("broken", "caught"), BROKEN_SENDERS, ids=lambda v: getattr(v, "__name__", ""))
def test_the_machine_catches_a_broken_sender(engine, outbox, sqs, hypothesis_settings, broken, caught):
    class Machine(OutboxMachine):
        def publisher_for(self, client: FaultySqsClient) -> Publisher:
            return broken(super().publisher_for(client))

    # Stops at the first failure; no shrinking here (minutes of database round trips), the
    # property test above shrinks its own failures.
    budget = settings(hypothesis_settings, max_examples=200, phases=[Phase.generate])
    with pytest.raises(AssertionError, match=caught):
        run_state_machine_as_test(lambda: Machine(engine, outbox, sqs), settings=budget)
