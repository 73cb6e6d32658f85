"""Replay: live and archived published rows re-published by id/time/type, in order per aggregate,
with replay-scoped dedup ids and execution names, resumable after a crash or a kill."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
import sqlalchemy as sa
from moto import mock_aws

from outbox_relay import OutboxEnvelope, SqsFifoPublisher, enqueue_many, purge_published
from outbox_relay.cli import main
from outbox_relay.envelope import deduplication_id, replay_deduplication_id
from outbox_relay.exceptions import (
    ConfigurationError,
    ReplayDeliveryError,
    ReplayRunBusyError,
    ReplayRunMismatchError,
)
from outbox_relay.replay import (
    HandlerDestination,
    QueueDestination,
    ReplayOptions,
    ReplaySelection,
    WorkflowDestination,
    count_replay,
    replay,
    replay_execution_name,
)

pytestmark = pytest.mark.integration


def seed_published(engine: sa.Engine, schema: str, n: int, *, aggregates: int = 5) -> list[dict[str, Any]]:
    """``n`` events round-robin over ``aggregates`` orders, two event types, marked published
    (row i published i minutes after the first, 3 days ago); returns them in id order."""
    events = [
        {
            "aggregate_type": "order" if i % 7 else "invoice",
            "aggregate_key": f"a{i % aggregates}",
            "event_type": "Placed" if i % 2 else "Paid",
            "payload": {"i": i},
        }
        for i in range(n)
    ]
    with engine.begin() as conn:
        ids = enqueue_many(conn, events, schema=schema)
        conn.exec_driver_sql(
            f"UPDATE \"{schema}\".outbox SET state = 'published', "
            "published_at = now() - interval '3 days' + id * interval '1 minute'"
        )
        rows = conn.exec_driver_sql(
            f'SELECT id, event_id FROM "{schema}".outbox WHERE event_id = ANY(%(ids)s) ORDER BY id',
            {"ids": ids},
        ).all()
    assert [r.event_id for r in rows] == ids
    return [{**e, "row_id": r.id, "event_id": str(r.event_id)} for e, r in zip(events, rows, strict=True)]


def receive_all(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            VisibilityTimeout=600,
        ).get("Messages", [])
        if not got:
            return out
        out.extend(got)
        # FIFO holds a group back while one of its messages is in flight: delete to go on
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)],
        )


def assert_once_in_order(messages: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """Each expected event exactly once, and per aggregate in id (commit) order."""
    ids = [json.loads(m["Body"])["event_id"] for m in messages]
    assert sorted(ids) == sorted(e["event_id"] for e in expected)
    assert len(ids) == len(set(ids))
    by_group: dict[str, list[str]] = defaultdict(list)
    for m in messages:
        by_group[m["Attributes"]["MessageGroupId"]].append(json.loads(m["Body"])["event_id"])
    want: dict[str, list[str]] = defaultdict(list)
    for e in expected:
        want[f"{e['aggregate_type']}:{e['aggregate_key']}"].append(e["event_id"])
    assert dict(by_group) == dict(want)


@pytest.fixture
def replay_queue(sqs: Any) -> str:
    return sqs.create_queue(QueueName="replay.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]


def test_replays_live_and_archived_rows_to_a_queue_once_in_order(engine, outbox, sqs, replay_queue):
    events = seed_published(engine, outbox, 60)
    # the first half moves to the archive (payloads kept there); two rows of the second half
    # lose their payload without archive: those two cannot be replayed
    archived = purge_published(
        engine, schema=outbox, older_than=timedelta(days=3) - timedelta(minutes=30), archive=True
    )
    assert archived == 30
    lost = [events[40]["row_id"], events[41]["row_id"]]
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"UPDATE \"{outbox}\".outbox SET payload = 'null'::jsonb WHERE id = ANY(%(ids)s)", {"ids": lost}
        )
    chosen = [e for e in events if e["row_id"] not in lost]
    selection = ReplaySelection()
    counts = count_replay(engine, selection=selection, schema=outbox)
    assert (counts.replayable, counts.unavailable) == (58, 2)

    dest = QueueDestination(SqsFifoPublisher(queue_url=replay_queue, sqs_client=sqs))
    result = replay(
        engine,
        destination=dest,
        selection=selection,
        options=ReplayOptions(run_id="r1", schema=outbox, page_size=7),
    )
    assert (result.delivered, result.finished, result.unavailable) == (58, True, 2)
    messages = receive_all(sqs, replay_queue)
    assert_once_in_order(messages, chosen)
    for m in messages:
        env = OutboxEnvelope.from_json(m["Body"])
        original = next(e for e in chosen if e["event_id"] == str(env.event_id))
        assert env.replay == {"run_id": "r1"} and env.is_replay
        assert env.payload == original["payload"]  # archived rows kept their payload
        dedup = m["Attributes"]["MessageDeduplicationId"]
        assert dedup == replay_deduplication_id("r1", env.event_id) != deduplication_id(env.event_id)
        assert m["MessageAttributes"]["replay_run_id"]["StringValue"] == "r1"


def test_a_second_run_is_not_deduplicated_against_the_first(engine, outbox, sqs, replay_queue):
    """Two runs of the same events inside SQS's 5-minute window: distinct dedup ids per run, so
    the second run's messages are delivered too (moto dedups only against queued messages,
    which here are still queued: the real window would drop them the same way)."""
    seed_published(engine, outbox, 12)
    dest = QueueDestination(SqsFifoPublisher(queue_url=replay_queue, sqs_client=sqs))
    for run in ("first", "second"):
        replay(
            engine,
            destination=dest,
            selection=ReplaySelection(),
            options=ReplayOptions(run_id=run, schema=outbox),
        )
    runs = [json.loads(m["Body"])["replay"]["run_id"] for m in receive_all(sqs, replay_queue)]
    assert sorted(runs) == ["first"] * 12 + ["second"] * 12


def test_selection_by_type_aggregate_id_and_time(engine, outbox):
    events = seed_published(engine, outbox, 40)
    with engine.begin() as conn:  # spread created_at: row i at base + i seconds
        conn.exec_driver_sql(
            f'UPDATE "{outbox}".outbox SET created_at = '
            "timestamptz '2026-01-01 00:00:00+00' + id * interval '1 second'"
        )
    seen: list[str] = []
    dest = HandlerDestination("collect", lambda conn, evs: seen.extend(e.event_id for e in evs))
    lo, hi = events[5]["row_id"], events[30]["row_id"]
    base = datetime(2026, 1, 1, tzinfo=UTC)
    selection = ReplaySelection(
        event_types=["Placed"],
        aggregate_types=("order",),
        from_id=lo,
        to_id=hi,
        since=base + timedelta(seconds=events[10]["row_id"]),
        until=base + timedelta(seconds=events[25]["row_id"]),
    )
    replay(engine, destination=dest, selection=selection, options=ReplayOptions(run_id="sel", schema=outbox))
    want = [
        e["event_id"]
        for e in events
        if e["event_type"] == "Placed"
        and e["aggregate_type"] == "order"
        and events[10]["row_id"] <= e["row_id"] < events[25]["row_id"]
    ]
    assert seen == want and want
    assert count_replay(engine, selection=selection, schema=outbox).replayable == len(want)


def test_pending_and_dead_rows_are_never_replayed(engine, outbox):
    events = seed_published(engine, outbox, 6)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"UPDATE \"{outbox}\".outbox SET state = CASE WHEN id = %(a)s THEN 'pending' ELSE 'dead' END "
            "WHERE id IN (%(a)s, %(b)s)",
            {"a": events[0]["row_id"], "b": events[1]["row_id"]},
        )
    assert count_replay(engine, selection=ReplaySelection(), schema=outbox).replayable == 4


def test_a_crash_after_sending_resumes_and_delivers_each_event_once(engine, outbox, sqs, replay_queue):
    """The process dies after SQS accepted the third page but before its checkpoint commit:
    the resumed run re-sends that page under the same replay dedup ids and SQS drops it. Real
    SQS drops it inside its 5-minute window; moto drops it because the copies are still queued."""
    events = seed_published(engine, outbox, 50)
    real = SqsFifoPublisher(queue_url=replay_queue, sqs_client=sqs)

    class DiesAfterThirdPage:
        max_batch_entries, max_batch_bytes = real.max_batch_entries, real.max_batch_bytes
        queue_url = real.queue_url  # the same destination as far as the run is concerned
        calls = 0

        def check(self) -> None:
            real.check()

        def publish_batch(self, messages):
            outcome = real.publish_batch(messages)
            self.calls += 1
            if self.calls == 3:
                raise KeyboardInterrupt  # like a SIGINT between send and commit
            return outcome

    opts = ReplayOptions(run_id="crash", schema=outbox, page_size=5)
    # pages of 5 events over 5 aggregates: one batch per page
    with pytest.raises(KeyboardInterrupt):
        replay(
            engine,
            destination=QueueDestination(DiesAfterThirdPage()),
            selection=ReplaySelection(),
            options=opts,
        )
    with engine.connect() as conn:
        last_id, replayed = conn.exec_driver_sql(
            f"SELECT last_id, replayed FROM \"{outbox}\".replay_checkpoints WHERE run_id = 'crash'"
        ).one()
    assert (last_id, replayed) == (events[9]["row_id"], 10)  # page 3 was sent, not recorded
    resumed = replay(engine, destination=QueueDestination(real), selection=ReplaySelection(), options=opts)
    assert (resumed.resumed_from_id, resumed.delivered, resumed.delivered_by_run) == (
        events[9]["row_id"],
        40,
        50,
    )
    assert_once_in_order(receive_all(sqs, replay_queue), events)
    again = replay(engine, destination=QueueDestination(real), selection=ReplaySelection(), options=opts)
    assert (again.delivered, again.finished) == (0, True)


def test_handler_destination_is_exactly_once_across_a_failure(engine, outbox):
    events = seed_published(engine, outbox, 30)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE TABLE "{outbox}".applied (event_id uuid PRIMARY KEY, row_id bigint)')
    fail_at = {events[17]["event_id"]}

    def apply(conn: sa.Connection, evs) -> None:
        for e in evs:
            conn.exec_driver_sql(
                f'INSERT INTO "{outbox}".applied VALUES (%(e)s, %(r)s)', {"e": e.event_id, "r": e.row_id}
            )
            if e.event_id in fail_at:
                raise RuntimeError("projection bug")

    opts = ReplayOptions(run_id="h", schema=outbox, page_size=4)
    with pytest.raises(ReplayDeliveryError, match="projection bug") as info:
        replay(
            engine,
            destination=HandlerDestination("applied", apply),
            selection=ReplaySelection(),
            options=opts,
        )
    assert isinstance(info.value.__cause__, RuntimeError)
    fail_at.clear()
    replay(
        engine, destination=HandlerDestination("applied", apply), selection=ReplaySelection(), options=opts
    )
    with engine.connect() as conn:  # a duplicate would have hit the primary key
        got = [r[0] for r in conn.exec_driver_sql(f'SELECT row_id FROM "{outbox}".applied ORDER BY row_id')]
    assert got == [e["row_id"] for e in events]


def test_a_run_id_keeps_its_selection_and_refuses_a_concurrent_runner(engine, outbox):
    seed_published(engine, outbox, 8)
    dest = HandlerDestination("noop", lambda conn, evs: None)
    replay(
        engine,
        destination=dest,
        selection=ReplaySelection(event_types=("Paid",)),
        options=ReplayOptions(run_id="k", schema=outbox),
    )
    with pytest.raises(
        ReplayRunMismatchError, match="event_types: run has \\['Paid'\\], given \\['Placed'\\]"
    ):
        replay(
            engine,
            destination=dest,
            selection=ReplaySelection(event_types=("Placed",)),
            options=ReplayOptions(run_id="k", schema=outbox),
        )
    with pytest.raises(ReplayRunMismatchError, match="handler:other"):
        replay(
            engine,
            destination=HandlerDestination("other", lambda conn, evs: None),
            selection=ReplaySelection(event_types=("Paid",)),
            options=ReplayOptions(run_id="k", schema=outbox),
        )
    opts = ReplayOptions(run_id="busy", schema=outbox)
    replay(engine, destination=dest, selection=ReplaySelection(to_id=1), options=opts)  # creates the run
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"UPDATE \"{outbox}\".replay_checkpoints SET finished_at = NULL WHERE run_id = 'busy'"
        )
    with engine.connect() as holder, holder.begin():
        holder.exec_driver_sql(
            f"SELECT 1 FROM \"{outbox}\".replay_checkpoints WHERE run_id = 'busy' FOR UPDATE"
        )
        with pytest.raises(ReplayRunBusyError, match="'busy' is being run by another process"):
            replay(engine, destination=dest, selection=ReplaySelection(to_id=1), options=opts)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"since": datetime(2026, 1, 1)},
            "since must be a timezone-aware datetime, got datetime.datetime(2026, 1, 1, 0, 0)",
        ),
        ({"from_id": 0}, "from_id must be a row id (an integer >= 1), got 0"),
        ({"from_id": 9, "to_id": 3}, "from_id (9) must not be above to_id (3)"),
        ({"event_types": ("",)}, "event_types must be non-empty strings, got ''"),
        (
            {"since": datetime(2026, 2, 1, tzinfo=UTC), "until": datetime(2026, 1, 1, tzinfo=UTC)},
            "must be before until",
        ),
    ],
)
def test_bad_selections_are_refused_before_any_sql(kwargs, message):
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        ReplaySelection(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"run_id": "has space"}, "run id 'has space' is invalid"),
        ({"run_id": "r", "rate": 0}, "rate must be a positive number of events per second, got 0"),
        ({"run_id": "r", "page_size": 0}, "page_size must be an integer from 1 to 10000, got 0"),
        ({"run_id": "r", "schema": "Bad"}, "schema name 'Bad' is invalid"),
    ],
)
def test_bad_options_are_refused(kwargs, message):
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        ReplayOptions(**kwargs)


def test_the_rate_cap_paces_each_event(engine, outbox, monkeypatch):
    """A virtual clock: the pacer sleeps until each event's slot, so 40 events at 20/s take
    (40 - 2) / 20 virtual seconds (the first two slots are free: a burst of one after the
    first); no wall-clock assertion."""
    from outbox_relay import sending

    class Clock:
        now = 1000.0

        def monotonic(self) -> float:
            return self.now

        def sleep(self, seconds: float) -> None:
            self.now += seconds

    clock = Clock()
    monkeypatch.setattr(sending, "time", clock)
    seed_published(engine, outbox, 40)
    opts = ReplayOptions(run_id="slow", schema=outbox, rate=20)
    assert opts.effective_page_size == 20  # about a second per transaction
    replay(
        engine,
        destination=HandlerDestination("noop", lambda c, e: None),
        selection=ReplaySelection(),
        options=opts,
    )
    assert 38 / 20 - 0.01 <= clock.now - 1000.0 <= 40 / 20


def test_the_envelope_marker_is_backward_compatible():
    env = OutboxEnvelope(
        event_id=uuid.uuid4(),
        event_type="Placed",
        aggregate_type="order",
        aggregate_key="1",
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        payload={"a": 1},
    )
    assert "replay" not in json.loads(env.to_json()) and not env.is_replay
    old_body = env.to_json()  # a consumer built before replay existed parses replays too
    assert OutboxEnvelope.from_json(old_body) == env
    marked = OutboxEnvelope.from_json(old_body[:-1] + ',"replay":{"run_id":"r"}}')
    assert marked.replay == {"run_id": "r"} and marked.event_id == env.event_id


def test_workflow_destination_starts_each_event_once_per_run(engine, outbox, aws_env):
    events = seed_published(engine, outbox, 9)
    with mock_aws():
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        arn = sfn.create_state_machine(
            name="Projection",
            definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
            roleArn="arn:aws:iam::123456789012:role/sfn",
        )["stateMachineArn"]
        dest = WorkflowDestination(state_machine_arn=arn, sfn_client=sfn)
        opts = ReplayOptions(run_id="wf", schema=outbox)
        replay(engine, destination=dest, selection=ReplaySelection(), options=opts)
        # a crash before the checkpoint commit: the resumed run starts the same names again
        with engine.begin() as conn:
            conn.exec_driver_sql(
                f'UPDATE "{outbox}".replay_checkpoints SET last_id = 0, finished_at = NULL '
                "WHERE run_id = 'wf'"
            )
        again = WorkflowDestination(state_machine_arn=arn, sfn_client=sfn)
        replay(engine, destination=again, selection=ReplaySelection(), options=opts)
        executions = sfn.list_executions(stateMachineArn=arn)["executions"]
        inputs = [
            json.loads(sfn.describe_execution(executionArn=x["executionArn"])["input"]) for x in executions
        ]
    # the service answers a repeated name with the same input with the same execution (while
    # open) or ExecutionAlreadyExists (closed): either way nothing starts twice
    assert dest.started == 9 and again.started + again.already_started == 9 and len(executions) == 9
    assert sorted(x["name"] for x in executions) == sorted(
        replay_execution_name("wf", e["event_id"]) for e in events
    )
    assert all(i["replay"] == {"run_id": "wf"} for i in inputs)
    with pytest.raises(ConfigurationError, match="state machine 'Projection' is not an ARN"):
        WorkflowDestination(state_machine_arn="Projection")


def test_cli_dry_run_counts_and_sends_nothing(engine, database_url, outbox, capsys):
    seed_published(engine, outbox, 10)
    purge_published(engine, schema=outbox, older_than=timedelta(0), archive=False)  # payloads gone
    seed_published(engine, outbox, 4)
    args = ["outbox", "replay", "--database-url", database_url, "--schema", outbox, "--dry-run"]
    assert main([*args, "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts == {
        "dry_run": True,
        "replayable": 4,
        "unavailable": 10,
        "by_event_type": {"Paid": 2, "Placed": 2},
        "after_id": 0,
    }
    assert main([*args, "--event-type", "Paid"]) == 0
    out = capsys.readouterr().out
    assert "dry run: 2 event(s) would be replayed" in out and "were purged without archive" in out
    with engine.connect() as conn:
        assert conn.exec_driver_sql(f'SELECT count(*) FROM "{outbox}".replay_checkpoints').scalar_one() == 0


def test_cli_refuses_without_run_id_or_destination(database_url, outbox, capsys):
    base = ["outbox", "replay", "--database-url", database_url, "--schema", outbox]
    assert main(base) == 2
    assert "--run-id" in capsys.readouterr().err
    assert main([*base, "--run-id", "x"]) == 2
    assert "--queue-url URL (a replay queue) or --state-machine-arn ARN" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main([*base, "--since", "2026-01-01T00:00:00"])
    assert usage.value.code == 2 and "give a time zone" in capsys.readouterr().err


def _moto_server() -> Any:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    return server


def test_cli_replay_resumes_after_a_kill_and_delivers_each_event_once(engine, database_url, outbox, aws_env):
    """A real SIGKILL mid-run: the open page's transaction dies with the connection, the
    checkpoint keeps the last committed page, and the same --run-id resumes after it."""
    # small: moto's SQS scans the whole queue on every send (DESIGN 2b), so it slows as it fills
    events = seed_published(engine, outbox, 150, aggregates=20)
    server = _moto_server()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=endpoint)
        queue_url = sqs.create_queue(QueueName="replay.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        cmd = [
            sys.executable, "-m", "outbox_relay.cli", "outbox", "replay", "--database-url", database_url,
            "--schema", outbox, "--run-id", "killed", "--queue-url", queue_url, "--endpoint-url", endpoint,
            "--region", "us-east-1", "--rate", "50",
        ]  # fmt: skip
        env = {**os.environ, "NO_COLOR": "1"}
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        replayed = 0
        while time.monotonic() < deadline and replayed < 50:
            time.sleep(0.2)
            with engine.connect() as conn:
                replayed = conn.exec_driver_sql(
                    f'SELECT coalesce(max(replayed), 0) FROM "{outbox}".replay_checkpoints'
                ).scalar_one()
            assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert 50 <= replayed < 150
        done = subprocess.run([*cmd[:-2], "--json"], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        assert summary["resumed_from_id"] >= events[49]["row_id"] and summary["delivered_by_run"] == 150
        assert_once_in_order(receive_all(sqs, queue_url), events)
    finally:
        server.stop()


def test_the_replay_bench_runs_tiny_and_reports_the_window(database_url):
    """bench.replay at a few hundred events: seeds the archive, rebuilds, verifies, and the
    report carries replay_events_per_s with the 72-hour window arithmetic."""
    from bench.common import make_ctx
    from bench.replay import WINDOW_EVENTS, run, window_arithmetic
    from bench.report import summarize, table

    ctx = make_ctx(database_url, quick=True)
    ctx.log = lambda *a: None
    try:
        raw = {"replay": run(ctx, events=400)}
    finally:
        ctx.engine.dispose()
    assert raw["replay"]["rebuilt_rows"] == 200 and raw["replay"]["events_per_s"] > 0
    out = summarize(raw)
    assert out["replay_events_per_s"]["value"] == raw["replay"]["events_per_s"]
    assert "replay 72 h window" in table({**out, "raw": raw})
    assert WINDOW_EVENTS == 2_073_600_000
    # the published figure: 47 minutes on 12 consumers is 61,277 events/s per consumer
    w = window_arithmetic(61_277)
    assert w["published_events_per_s_per_consumer"] == 61_277 and w["minutes_12_consumers"] == 47.0


def test_cli_replay_prints_plain_progress_and_a_summary(
    engine, database_url, outbox, sqs, replay_queue, capsys
):
    """Not a terminal (pytest captures stderr): plain progress lines, no Rich; then the summary."""
    events = seed_published(engine, outbox, 25)
    args = ["outbox", "replay", "--database-url", database_url, "--schema", outbox, "--run-id", "plain"]
    assert main([*args, "--queue-url", replay_queue, "--page-size", "10"]) == 0
    captured = capsys.readouterr()
    assert "] replay plain 0/25 delivered, last row 0" in captured.err
    assert f"] replay plain 25/25 delivered, last row {events[-1]['row_id']}" in captured.err
    assert "\x1b[" not in captured.err  # no terminal control sequences
    assert (
        "replay run 'plain' finished" in captured.out
        and "delivered by the run              25" in captured.out
    )
    assert len(receive_all(sqs, replay_queue)) == 25


def test_an_event_routed_to_several_destinations_is_replayed_once(engine, outbox):
    """One row per (event, destination): replay reads the SQS rows, so a second destination
    of the same events adds nothing to the run."""
    from outbox_relay import Destination, enqueue
    from outbox_relay.destinations import SQS_DESTINATION

    seed_published(engine, outbox, 4)
    with engine.begin() as conn:
        enqueue(
            conn,
            aggregate_type="order",
            aggregate_key="routed",
            event_type="Placed",
            payload={},
            schema=outbox,
            destinations=[SQS_DESTINATION, Destination(name="bus", kind="eventbridge")],
        )
        conn.exec_driver_sql(f"UPDATE \"{outbox}\".outbox SET state = 'published', published_at = now()")
    assert count_replay(engine, selection=ReplaySelection(), schema=outbox).replayable == 5
