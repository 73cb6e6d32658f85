"""`saga-outbox local run` on an app written the way a user writes one: a two-step saga whose
second step can fail, and an action that emits a follow-on event through ``ctx.enqueue``."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from saga_outbox.cli import main
from saga_outbox.local import LocalOptions, run_event
from saga_outbox.local.run import LocalRunError

pytestmark = pytest.mark.integration

APP = """
import uuid

import sqlalchemy as sa

from saga_outbox import BusinessRuleViolation, SagaApp, Step, StepContext, Workflow, WorkflowKind

SCHEMA = "{schema}"
app = SagaApp("rooms")
app.add(Workflow(name="RoomSaga", kind=WorkflowKind.STANDARD, steps=[
    Step(name="BookRoom", action="book_room", compensation="cancel_room"),
    Step(name="ChargeCard", action="charge_card"),
]))
app.add(Workflow(name="RoomLog", kind=WorkflowKind.EXPRESS, steps=[
    Step(name="Log", action="log", idempotent=True),
]))
app.route("RoomRequested", "RoomSaga")
app.route("RoomBooked", "RoomLog")


class CardDeclined(BusinessRuleViolation):
    pass


@app.migration
def tables(conn: sa.Connection) -> None:
    conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{{SCHEMA}}"')
    conn.exec_driver_sql(
        f'CREATE TABLE IF NOT EXISTS "{{SCHEMA}}".bookings '
        "(effect_key text PRIMARY KEY, room text, cancelled boolean NOT NULL DEFAULT false)"
    )


@app.action("RoomSaga", "book_room")
def book_room(ctx: StepContext) -> dict:
    ctx.conn.exec_driver_sql(
        f'INSERT INTO "{{SCHEMA}}".bookings (effect_key, room) VALUES (%(k)s, %(r)s) ON CONFLICT DO NOTHING',
        {{"k": ctx.effect_key, "r": ctx.payload["room"]}},
    )
    ctx.enqueue("RoomBooked", {{"room": ctx.payload["room"]}}, aggregate_type="room",
                aggregate_key=ctx.payload["room"], event_id=uuid.uuid5(uuid.NAMESPACE_URL, ctx.execution))
    return {{"booking": ctx.effect_key}}


@app.action("RoomSaga", "cancel_room")
def cancel_room(ctx: StepContext) -> dict:
    booking = (ctx.result_of("BookRoom") or {{}}).get("booking")
    ctx.conn.exec_driver_sql(
        f'UPDATE "{{SCHEMA}}".bookings SET cancelled = true WHERE effect_key = %(k)s', {{"k": booking}}
    )
    return {{"cancelled": booking}}


@app.action("RoomSaga", "charge_card")
def charge_card(ctx: StepContext) -> dict:
    if ctx.payload.get("decline"):
        raise CardDeclined("card declined")
    return {{"charged": True}}


@app.action("RoomLog", "log")
def log(ctx: StepContext) -> None:
    return None
"""


@pytest.fixture
def rooms_app(tmp_path: Path, schema: str, monkeypatch: pytest.MonkeyPatch) -> str:
    module = f"rooms_app_{schema}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(APP.format(schema=schema)))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield f"{module}:app"
    sys.modules.pop(module, None)


def test_success_runs_both_steps_and_the_follow_on_event(rooms_app, database_url, schema, engine, aws_env):
    report = run_event(
        rooms_app,
        event_type="RoomRequested",
        payload={"room": "101"},
        options=LocalOptions(database_url=database_url, outbox_schema=f"{schema}_ob"),
    )
    by_workflow = {e.workflow: e for e in report.executions}
    assert set(by_workflow) == {"RoomSaga", "RoomLog"}, report.as_dict()
    saga = by_workflow["RoomSaga"]
    assert (saga.status, saga.outcome) == ("SUCCEEDED", "completed")
    assert saga.states == ("Start", "BookRoom", "ChargeCard", "MarkCompleted", "SagaCompleted")
    log = by_workflow["RoomLog"]
    assert (log.kind, log.status, log.outcome, log.event_type) == ("EXPRESS", "SUCCEEDED", None, "RoomBooked")
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(f'SELECT room, cancelled FROM "{schema}".bookings').all()
    assert rows == [("101", False)]


def test_failure_of_the_second_step_compensates_the_first(
    rooms_app, database_url, schema, engine, aws_env, capsys
):
    code = main(
        [
            "local",
            "run",
            "--app",
            rooms_app,
            "--event-type",
            "RoomRequested",
            "--payload",
            json.dumps({"room": "102", "decline": True}),
            "--database-url",
            database_url,
            "--json",
        ]
    )
    out = capsys.readouterr().out
    data = json.loads(out)
    assert code == 0, data
    saga = next(e for e in data["executions"] if e["workflow"] == "RoomSaga")
    assert (saga["status"], saga["outcome"]) == ("SUCCEEDED", "compensated")
    assert saga["states"] == [
        "Start",
        "BookRoom",
        "ChargeCard",
        "ChargeCardFailed",  # the Choice that reads the error: a rejection undoes the steps before
        "CompensateBookRoom",
        "MarkCompensated",
        "SagaCompensated",
    ]
    assert {"workflow", "kind", "status", "outcome", "states"} <= set(saga)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(f'SELECT room, cancelled FROM "{schema}".bookings').all()
    assert rows == [("102", True)]


def test_bad_input_is_refused_before_anything_starts(rooms_app, capsys):
    assert main(["local", "run", "--app", rooms_app, "--event-type", "X", "--payload", "[1]"]) == 2
    assert "--payload must be a JSON object, got list" in capsys.readouterr().err
    assert main(["local", "run", "--app", rooms_app, "--event-type", "X", "--payload", "{"]) == 2
    assert "--payload is not valid JSON" in capsys.readouterr().err
    with pytest.raises(LocalRunError, match="routes no workflow for event type 'Nope'"):
        run_event(rooms_app, event_type="Nope", payload={})
