"""``saga-outbox reconcile`` against a real PostgreSQL and moto's Step Functions (LocalRuntime):
a lost dispatch (a row marked published whose message never reached the dispatcher, live and
archived) is started once under the dispatcher's own name and succeeds, a task-token step
nobody answers is reported once its deadline has passed, a compensation that raises is listed
with what was and was not undone, an Express failure is listed, and --dry-run starts nothing."""

from __future__ import annotations

import json
import sys
import textwrap
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from outbox_relay import InMemoryMetrics, OutboxEnvelope, enqueue
from saga_outbox.cli import main
from saga_outbox.lambdas.dispatching import Dispatcher, build_routes
from saga_outbox.local import LocalOptions, LocalRuntime
from saga_outbox.ops.reconcile import Reconciler
from saga_outbox.workflows import execution_name

pytestmark = pytest.mark.integration

APP = """
from saga_outbox import BusinessRuleViolation, Integration, RetryPolicy, SagaApp, Step, Workflow, WorkflowKind

ONCE = RetryPolicy(max_attempts=1)
TOKENS = {}
app = SagaApp("reconcile")
app.add(Workflow(name="PlainSaga", steps=[Step(name="Note", action="note", compensation="unnote")]))
app.add(Workflow(name="WaitSaga", steps=[
    Step(name="Approve", action="ask", integration=Integration.LAMBDA_WAIT_FOR_TASK_TOKEN,
         timeout_seconds=3600, retry=ONCE),
]))
app.add(Workflow(name="BrokenSaga", steps=[
    Step(name="Book", action="book", compensation="unbook", retry=ONCE),
    Step(name="Hold", action="hold", compensation="unhold", retry=ONCE),
    Step(name="Charge", action="charge", retry=ONCE),
]))
app.add(Workflow(name="NoteLog", kind=WorkflowKind.EXPRESS, steps=[
    Step(name="Log", action="log", idempotent=True, retry=ONCE),
]))
app.route("Planned", "PlainSaga")
app.route("Waiting", "WaitSaga")
app.route("Broken", "BrokenSaga")
app.route("Noted", "NoteLog")


class Declined(BusinessRuleViolation):
    pass


class LedgerDown(Exception):
    pass


@app.action("PlainSaga", "note")
def note(ctx):
    return {"noted": ctx.payload["n"]}


@app.action("PlainSaga", "unnote")
def unnote(ctx):
    return {}


@app.action("WaitSaga", "ask")
def ask(ctx):
    TOKENS[ctx.payload["n"]] = ctx.task_token  # and nobody ever answers
    return {}


@app.action("BrokenSaga", "book")
def book(ctx):
    return {"booked": True}


@app.action("BrokenSaga", "unbook")
def unbook(ctx):
    raise LedgerDown("the ledger refused the refund")


@app.action("BrokenSaga", "hold")
def hold(ctx):
    return {"held": True}


@app.action("BrokenSaga", "unhold")
def unhold(ctx):
    return {"released": True}


@app.action("BrokenSaga", "charge")
def charge(ctx):
    raise Declined("card declined")


@app.action("NoteLog", "log")
def log(ctx):
    raise RuntimeError("log sink down")
"""


@pytest.fixture
def app_spec(tmp_path: Path, schema: str, monkeypatch: pytest.MonkeyPatch):
    module = f"reconcile_app_{schema}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(APP))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield f"{module}:app"
    sys.modules.pop(module, None)


def _enqueue(runtime: LocalRuntime, event_type: str, n: str) -> uuid.UUID:
    assert runtime.engine is not None
    with runtime.engine.begin() as conn:
        return enqueue(
            conn,
            aggregate_type="thing",
            aggregate_key=n,
            event_type=event_type,
            payload={"n": n},
            schema=runtime.options.outbox_schema,
        )


def _finished(runtime: LocalRuntime, workflow: str, count: int, timeout: float = 90) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [e for e in runtime.executions(workflow) if e["status"] != "RUNNING"]
        if len(done) >= count:
            return done
        time.sleep(0.2)
    raise AssertionError(f"{workflow}: {runtime.executions(workflow)}")


def _lose(runtime: LocalRuntime, n: str, *, archive: bool) -> uuid.UUID:
    """A row the relay marked published an hour ago whose message never reached a dispatcher
    (expired, dead-lettered, dropped): enqueued while no relay runs, then marked by hand."""
    event_id = _enqueue(runtime, "Planned", n)
    s = runtime.options.outbox_schema
    assert runtime.engine is not None
    with runtime.engine.begin() as conn:
        conn.exec_driver_sql(
            f"UPDATE \"{s}\".outbox SET state = 'published', published_at = now() - interval '1 hour', "
            "attempts = 1, send_count = 1 WHERE event_id = %(e)s",
            {"e": event_id},
        )
        if archive:  # what `outbox purge --archive` does with it later
            conn.exec_driver_sql(
                f'WITH moved AS (DELETE FROM "{s}".outbox WHERE event_id = %(e)s RETURNING *) '
                f'INSERT INTO "{s}".outbox_archive SELECT * FROM moved',
                {"e": event_id},
            )
    return event_id


def test_reconcile_repairs_lost_dispatches_and_reports_what_is_stuck_or_failed(
    app_spec, database_url, schema, aws_env, capsys
) -> None:
    options = LocalOptions(database_url=database_url, outbox_schema=schema)
    with LocalRuntime(app_spec, options) as runtime:
        tokens = sys.modules[app_spec.split(":")[0]].TOKENS
        for event_type, n in (("Planned", "ok"), ("Waiting", "w1"), ("Broken", "b1"), ("Noted", "x1")):
            _enqueue(runtime, event_type, n)
        _finished(runtime, "PlainSaga", 1)
        _finished(runtime, "BrokenSaga", 1)
        _finished(runtime, "NoteLog", 1)
        deadline = time.monotonic() + 60
        while "w1" not in tokens:
            assert time.monotonic() < deadline, "the task-token step never ran"
            time.sleep(0.1)
        runtime.stop_workers()  # from here on, nothing but the reconciler starts executions
        live, archived = _lose(runtime, "lost-live", archive=False), _lose(runtime, "lost-arch", archive=True)

        sfn, arns = runtime.clients["stepfunctions"], runtime.state_machine_arns
        assert runtime.engine is not None
        metrics = InMemoryMetrics()

        def reconciler(**kw) -> Reconciler:
            return Reconciler(
                runtime.app,
                engine=runtime.engine,
                sfn_client=sfn,
                state_machine_arns=arns,
                schema=schema,
                **kw,
            )

        # --dry-run: both found, nothing started
        dry = reconciler(dry_run=True).run()
        assert {(d.event_id, d.archived, d.action) for d in dry.lost_dispatches} == {
            (str(live), False, "would_start"),
            (str(archived), True, "would_start"),
        }
        assert len(runtime.executions("PlainSaga")) == 1
        # a deadline 1 h 15 min away has not passed yet: nothing is stuck
        assert dry.stuck == ()

        # the real run, an hour and a quarter later (the deadline of WaitSaga is 1 h + margins)
        later = datetime.now(UTC) + timedelta(hours=2)
        report = reconciler(metrics=metrics).run(now=later)
        started = {d.event_id: d for d in report.lost_dispatches}
        assert set(started) == {str(live), str(archived)}
        assert {d.action for d in started.values()} == {"started"}
        for event_id in (live, archived):
            assert started[str(event_id)].execution_name == execution_name("PlainSaga", event_id)
        done = {e["name"]: e for e in _finished(runtime, "PlainSaga", 3)}
        for event_id in (live, archived):
            execution = done[execution_name("PlainSaga", event_id)]
            assert execution["status"] == "SUCCEEDED"
            body = sfn.describe_execution(executionArn=execution["executionArn"])["input"]
            assert OutboxEnvelope.from_json(body).event_id == event_id

        # a dispatcher that gets the message after all finds the same execution: no second run
        envelope = OutboxEnvelope.from_json(
            sfn.describe_execution(executionArn=started[str(live)].execution_arn)["input"]
        )
        again = Dispatcher(sfn_client=sfn, routes=build_routes(runtime.app, arns)).dispatch(envelope)
        assert [s.execution_arn for s in again] == [started[str(live)].execution_arn]
        assert len(runtime.executions("PlainSaga")) == 3

        [stuck] = report.stuck
        assert (stuck.workflow, stuck.current_state) == ("WaitSaga", "Approve")
        assert stuck.running_seconds > stuck.deadline_seconds >= 3600

        [saga] = report.compensation_failed
        assert saga.workflow == "BrokenSaga"
        assert [(x["state"], x["error"], x["cause"]) for x in saga.failed] == [
            ("CompensateBook", "LedgerDown", "the ledger refused the refund")
        ]
        assert saga.undone == ("Hold",)
        assert [x["step"] for x in saga.not_undone] == ["Book"]
        assert "CompensateBook failed: LedgerDown" in saga.not_undone[0]["reason"]

        assert [(x.workflow, x.kind, x.status) for x in report.failed] == [("NoteLog", "EXPRESS", "FAILED")]
        assert report.counts == {
            "lost_dispatches": 2,
            "started": 2,
            "start_failures": 0,
            "stuck": 1,
            "compensation_failed": 1,
            "failed": 1,
        }
        assert metrics.counters["ReconcileExecutionsStarted"] == 2
        assert metrics.counters["ReconcileStuckExecutions"] == 1

        # a second run repairs nothing (and a parallel one would find the same names)
        assert reconciler().run(now=later).lost_dispatches == ()

        # the CLI: ARNs resolved by name, JSON on stdout
        code = main(
            ["reconcile", "--app", app_spec, "--database-url", database_url, "--schema", schema, "--json"]
        )
        data = json.loads(capsys.readouterr().out)
        assert code == 0
        assert data["counts"]["lost_dispatches"] == 0
        assert data["counts"]["compensation_failed"] == 1
        assert data["events_checked"] == 2  # the two lost ones; the others are younger than 15 min
        assert data["compensation_failed"][0]["not_undone"][0]["step"] == "Book"


@pytest.mark.parametrize(
    ("arns", "message"),
    [
        ("{not json", "--state-machine-arns is not JSON"),
        ('["arn:aws:states:us-east-1:1:stateMachine:x"]', "must be a JSON object"),
        ('{"Nope": "arn:aws:states:us-east-1:123456789012:stateMachine:Nope"}', "does not have: Nope"),
        ('{"PlainSaga": "arn:aws:states:us-east-1:123456789012:stateMachine:PlainSaga"}', "no ARN for"),
    ],
)
def test_bad_inputs_exit_2_with_one_line(app_spec, arns, message, capsys) -> None:
    code = main(
        [
            "reconcile",
            "--app",
            app_spec,
            "--database-url",
            "postgresql://nowhere/x",
            "--state-machine-arns",
            arns,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("saga-outbox: error: ")
    assert message in err
