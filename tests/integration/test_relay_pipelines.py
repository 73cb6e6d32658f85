"""Every pipeline of one relay keeps working while there is a backlog.

Two pipelines claiming at the same moment choose the same heads from the same snapshot, and the
one whose SKIP LOCKED loses gets nothing; a pipeline whose scan window is full of its
siblings' leased rows sees nothing either. Neither is an empty outbox: a drain that ended such a
pipeline ran the rest of the backlog on fewer pipelines (one of four, measured: 2,000 instead of
3,100 events/s through SQS), and a serving relay slept a poll interval with rows waiting.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence

import pytest
import sqlalchemy as sa

from outbox_relay import BatchOutcome, OutboundMessage, Relay, RelayOptions, enqueue_many
from outbox_relay.store import OutboxStore

pytestmark = pytest.mark.integration


class SlowSink:
    """Takes 20 ms per call, like an SQS round trip, so pipelines overlap."""

    max_batch_entries = 10
    max_batch_bytes = 1_048_576

    def check(self) -> None:
        return None

    def publish_batch(self, messages: Sequence[OutboundMessage]) -> BatchOutcome:
        time.sleep(0.02)
        return BatchOutcome(succeeded=[m.row_id for m in messages])


def _fill(engine: sa.Engine, schema: str, n: int) -> None:
    events = [
        {"aggregate_type": "acct", "aggregate_key": f"k{i:05d}", "event_type": "E", "payload": {"i": i}}
        for i in range(n)
    ]
    with engine.begin() as conn:
        enqueue_many(conn, events, schema=schema)


def _claims_by_pipeline(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Per pipeline thread, how many of its claims returned rows."""
    claims: Counter[str] = Counter()
    lock = threading.Lock()
    original = OutboxStore.claim

    def recording(self: OutboxStore, **kw: object) -> tuple[int, list[object]]:
        token, rows = original(self, **kw)  # type: ignore[arg-type]
        with lock:
            if rows:
                claims[threading.current_thread().name] += 1
        return token, rows

    monkeypatch.setattr(OutboxStore, "claim", recording)
    return claims


def _serve_until_drained(
    relay: Relay, *, seconds: float, before_stop: Callable[[], None] = lambda: None
) -> int:
    """Serve (``start_in_thread``) until nothing is pending or ``seconds`` pass; stop, close,
    and return what is still pending."""
    handle = relay.start_in_thread()
    try:
        deadline = time.monotonic() + seconds
        while relay.pending_count() and time.monotonic() < deadline:
            time.sleep(0.1)
        return relay.pending_count()
    finally:
        before_stop()
        handle.stop()
        relay.close()


@pytest.mark.parametrize(
    ("pipelines", "claim_size"),
    [
        (4, 50),  # claims collide: the same heads chosen at once
        (16, 100),  # 1,600 rows leased in flight, past both scan windows (2 x 500)
    ],
)
def test_a_drain_keeps_every_pipeline_busy_until_the_backlog_is_gone(
    engine: sa.Engine, outbox: str, monkeypatch: pytest.MonkeyPatch, pipelines: int, claim_size: int
) -> None:
    rows = pipelines * claim_size * 6
    _fill(engine, outbox, rows)
    claims = _claims_by_pipeline(monkeypatch)
    relay = Relay(
        engine=engine,
        publisher=SlowSink(),
        options=RelayOptions(
            schema=outbox, listen=False, pipelines=pipelines, claim_size=claim_size, concurrency=64
        ),
    )
    try:
        result = relay.drain(max_seconds=120)
    finally:
        relay.close()
    assert result.published == rows and result.remaining == 0
    # each pipeline stayed until the end: it claimed work in the last rounds too, not just once
    assert len(claims) == pipelines, f"pipelines that ever claimed rows: {dict(claims)}"
    starved = {name: n for name, n in claims.items() if n < 3}
    assert not starved, f"pipelines that gave up with a backlog left: {starved} (claims: {dict(claims)})"


def test_a_serving_relay_does_not_sleep_a_poll_interval_behind_its_own_leases(
    engine: sa.Engine, outbox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without LISTEN and with a long poll interval, a pipeline that found only its siblings'
    leased rows used to sleep the whole interval; it now looks again when a sibling marks."""
    _fill(engine, outbox, 16 * 100 * 4)
    claims = _claims_by_pipeline(monkeypatch)
    relay = Relay(
        engine=engine,
        publisher=SlowSink(),
        options=RelayOptions(
            schema=outbox,
            listen=False,
            pipelines=16,
            claim_size=100,
            concurrency=64,
            poll_interval_seconds=600,
        ),
    )
    remaining = _serve_until_drained(relay, seconds=60)
    # a sleeping pipeline would hold the backlog for the 600 s interval (the deadline is 60 s)
    assert remaining == 0
    assert len(claims) == 16, dict(claims)


def test_a_claim_stuck_on_its_connection_does_not_stop_the_other_pipelines(
    engine: sa.Engine, outbox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Claims take turns; a claim that never returns (a frozen backend, a black-holed socket)
    must not hold the turn forever: after a third of the lease the others claim anyway."""
    _fill(engine, outbox, 400)
    release = threading.Event()
    stuck: list[str] = []
    original = OutboxStore.claim

    def claim(self: OutboxStore, **kw: object) -> tuple[int, list[object]]:
        if not stuck:
            stuck.append(threading.current_thread().name)
            release.wait(30)  # the first claim hangs, holding its turn
        return original(self, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(OutboxStore, "claim", claim)
    relay = Relay(
        engine=engine,
        publisher=SlowSink(),
        options=RelayOptions(schema=outbox, listen=False, pipelines=4, claim_size=50, lease_seconds=3),
    )
    remaining = _serve_until_drained(relay, seconds=20, before_stop=release.set)
    assert remaining == 0, f"{remaining} rows left while one claim hung"
