"""Pure functions of outbox_relay: ids, envelope, options, claim selection and batching."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

import outbox_relay
from outbox_relay import (
    ConfigurationError,
    InvalidEventError,
    NullPublisher,
    OutboxEnvelope,
    Relay,
    RelayOptions,
    deduplication_id,
    message_group_id,
)
from outbox_relay.envelope import estimated_size, message_attributes, message_size
from outbox_relay.publisher import OutboundMessage
from outbox_relay.store import select_claimable


def test_public_api_is_hand_picked_and_lazy():
    import subprocess
    import sys

    assert set(outbox_relay.__all__) == set(outbox_relay._EXPORTS)  # type: ignore[attr-defined]
    for name in outbox_relay.__all__:
        assert getattr(outbox_relay, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        outbox_relay.Nope  # type: ignore[attr-defined]  # noqa: B018
    # a Lambda handler that needs the envelope and the exceptions must not pay for SQLAlchemy
    probe = (
        "import sys, outbox_relay; outbox_relay.OutboxEnvelope; outbox_relay.InvalidEventError; "
        "print(sorted(m for m in ('sqlalchemy', 'psycopg', 'boto3') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_deduplication_id_is_a_pure_function_of_the_event_id():
    eid = uuid.uuid4()
    assert deduplication_id(eid) == deduplication_id(str(eid)) == str(eid)
    assert len(deduplication_id(eid)) <= 128


def test_group_id_rejects_what_sqs_would_refuse():
    assert message_group_id("order", "a-1") == "order:a-1"
    with pytest.raises(InvalidEventError, match="'order:has space'"):
        message_group_id("order", "has space")
    with pytest.raises(InvalidEventError, match="1-128"):
        message_group_id("order", "x" * 200)


def test_envelope_round_trip_and_size_estimate_are_exact():
    env = OutboxEnvelope(
        event_id=uuid.uuid4(),
        event_type="Ünïcode",
        aggregate_type="order",
        aggregate_key="k",
        occurred_at=datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        payload={"a": [1, 2.5, None], "s": "é"},
        headers={"h": "v"},
    )
    body = env.to_json()
    assert OutboxEnvelope.from_json(body) == env
    from outbox_relay.envelope import dumps

    estimate = estimated_size(
        event_id=str(env.event_id),
        event_type=env.event_type,
        aggregate_type="order",
        aggregate_key="k",
        payload_json=dumps(env.payload, what="p", event_id="x"),
        headers_json=dumps(dict(env.headers), what="h", event_id="x"),
    )
    assert estimate == message_size(body, message_attributes(env.event_type))


def test_envelope_parse_error_shows_the_body():
    with pytest.raises(InvalidEventError, match="not an outbox envelope"):
        OutboxEnvelope.from_json('{"nope": 1}')


@pytest.mark.parametrize(
    "field,value",
    [
        ("batch_size", 11),
        ("rows_per_group", 0),
        ("concurrency", 0),
        ("lease_seconds", 0.5),
        ("schema", "Bad-Name"),
    ],
)
def test_options_are_validated(field, value):
    with pytest.raises(ConfigurationError, match=field if field != "schema" else "Bad-Name"):
        RelayOptions(**{field: value})


def _cand(i, g, *, due=True, leased=False):
    return SimpleNamespace(id=i, aggregate_type="t", aggregate_key=g, due=due, leased=leased)


def test_claim_selection_takes_heads_and_contiguous_followers():
    rows = [
        _cand(1, "a"),
        _cand(2, "b", due=False),
        _cand(3, "a"),
        _cand(4, "b"),
        _cand(5, "c"),
        _cand(6, "a", due=False),  # scheduled for later (available_at in the future)
        _cand(7, "a"),
        _cand(8, "d"),
        _cand(9, "d", leased=True),
    ]
    heads, ids = select_claimable(rows, claim_size=100, rows_per_group=5)
    # b's head is backing off, d has a leased row, a stops at its first row not yet due
    assert heads == [1, 5] and ids == [1, 3, 5]
    heads, ids = select_claimable(rows, claim_size=100, rows_per_group=1)
    assert ids == [1, 5]
    assert select_claimable(rows, claim_size=2, rows_per_group=5)[1] == [1, 3]


def _msg(i, group, size=100):
    return OutboundMessage(
        row_id=i, event_id=str(i), group_id=group, deduplication_id=str(i), body="x", attributes={}, size=size
    )


def test_batches_keep_each_group_in_one_request_and_respect_limits():
    relay = Relay(
        engine="postgresql://u@localhost/db", publisher=NullPublisher(), options=RelayOptions(listen=False)
    )
    msgs = [_msg(i, f"g{i % 3}") for i in range(12)] + [_msg(100 + i, "big", 400_000) for i in range(3)]
    batches = relay._batches(msgs)
    for b in batches:
        assert len(b) <= 10 and sum(m.size for m in b) <= 1_048_576
    where: dict[str, set[int]] = {}
    for n, b in enumerate(batches):
        for m in b:
            where.setdefault(m.group_id, set()).add(n)
    assert all(len(v) == 1 for v in where.values()), "a group was split across concurrent requests"
    sent = [m.row_id for b in batches for m in b]
    assert 102 not in sent and {100, 101} <= set(sent)  # the big run's tail waits for the next claim
    for g in ("g0", "g1", "g2"):
        ids = [m.row_id for b in batches for m in b if m.group_id == g]
        assert ids == sorted(ids)


def test_pacer_never_exceeds_its_rate_beyond_the_burst():
    from outbox_relay.sending import Pacer as _Pacer

    pacer = _Pacer(200.0, burst=5)
    started = time.monotonic()
    for _ in range(45):
        pacer.wait()
    # 5 calls may go at once; the other 40 are spaced 5 ms apart
    assert time.monotonic() - started >= 40 / 200.0 - 0.005


@pytest.mark.parametrize(
    ("code", "status", "cause"),
    [
        ("ExpiredToken", 403, "credentials"),
        ("InvalidClientTokenId", 403, "credentials"),
        ("AccessDenied", 403, "permission"),
        ("KMS.DisabledException", 400, "permission"),
        ("AWS.SimpleQueueService.NonExistentQueue", 400, "destination"),
        ("InternalError", 500, "server"),
        ("Whatever", 503, "server"),
        ("ThrottlingException", 400, "throttled"),
        ("Anything", 429, "throttled"),
        ("InvalidParameterValue", 400, "rejected"),
    ],
)
def test_request_failures_are_classified_by_cause(code, status, cause):
    from outbox_relay.exceptions import PublishError
    from outbox_relay.publisher import request_cause

    assert request_cause(code, status) == cause
    err = PublishError("x", retryable=cause != "rejected", throttled=cause == "throttled", cause=cause)
    assert err.request_level is (cause != "rejected")


def test_a_group_keeps_only_its_rows_before_the_first_one_held_elsewhere():
    from outbox_relay.store import keep_locked_prefix

    rows = [_cand(1, "a"), _cand(2, "b"), _cand(3, "a"), _cand(4, "b"), _cand(5, "a"), _cand(6, "c")]
    ids = [1, 2, 3, 4, 5, 6]
    # a's second row and b's head are held by another transaction
    assert keep_locked_prefix(rows, ids, locked={1, 4, 5, 6}) == [1, 6]


def test_a_notify_wakes_one_idle_pipeline_and_a_stop_wakes_them_all():
    from outbox_relay.supervisor import Waker

    waker = Waker()
    waker.wake()  # nobody idle: kept for the next pipeline that goes idle
    assert waker.wait(0.0) is True
    assert waker.wait(0.01) is False  # consumed once

    woken: list[bool] = []
    waiters = [threading.Thread(target=lambda: woken.append(waker.wait(1.0))) for _ in range(3)]
    for t in waiters:
        t.start()
    time.sleep(0.1)  # all three are waiting
    waker.wake()
    time.sleep(0.3)
    assert woken == [True], "one wake went to more than one pipeline"
    waker.wake(everyone=True)
    for t in waiters:
        t.join(2)
    assert woken == [True, True, True]
    assert waker.wait(0.0) is True  # a stop stays: every later wait returns at once
    waker.reset()
    assert waker.wait(0.0) is False
