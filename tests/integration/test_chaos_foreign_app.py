"""``saga-outbox chaos`` for an app the package has never heard of, with no scenario: the
plain-event and generic saga checks run (on the app's own compiled workflow), and the domain
checks are reported as skipped, in the report, the JSON and the table."""

from __future__ import annotations

import json

import pytest

from saga_outbox import BusinessRuleViolation, SagaApp, Step, StepContext, Workflow, WorkflowKind
from saga_outbox.local.chaos import DOMAIN_CHECKS, ChaosOptions, run_chaos
from saga_outbox.local.chaos.cli import format_table

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

booked: list[str] = []
cancelled: list[str] = []


def room_app() -> SagaApp:
    app = SagaApp("rooms")
    app.add(
        Workflow(
            name="RoomSaga",
            kind=WorkflowKind.STANDARD,
            steps=[
                Step(name="BookRoom", action="book_room", compensation="cancel_room"),
                Step(name="ChargeCard", action="charge_card"),
            ],
        )
    )
    app.route("RoomRequested", "RoomSaga")

    @app.action("RoomSaga", "book_room")
    def book_room(ctx: StepContext) -> dict[str, str]:
        booked.append(ctx.execution)
        return {"room": "101"}

    @app.action("RoomSaga", "cancel_room")
    def cancel_room(ctx: StepContext) -> dict[str, bool]:
        cancelled.append(ctx.execution)
        return {"cancelled": True}

    @app.action("RoomSaga", "charge_card")
    def charge_card(ctx: StepContext) -> dict[str, bool]:
        # the generic starter numbers its events: every third card is declined -> compensated
        if int(ctx.payload["chaos_seq"]) % 3 == 0:
            raise BusinessRuleViolation("card declined")
        return {"charged": True}

    return app


def test_foreign_app_without_scenario_runs_generic_checks(database_url: str, aws_env: None) -> None:
    report = run_chaos(
        ChaosOptions(
            events=600,
            sagas=12,
            kills=2,
            relays=2,
            seed=3,
            database_url=database_url,
            # the long faults at small durations (the default ones take minutes)
            sqs_outages=1,
            sqs_outage_seconds=3.0,
            stalls=1,
            table_lock_interval_seconds=4.0,
            foreign_transaction_seconds=3.0,
            # no step of unknown outcome: the outcome split below is the app's own (every third
            # card declined); those faults are checked with the orders scenario
            step_exhausted_rate=0.0,
            step_idempotency_down_rate=0.0,
        ),
        app=room_app(),
        progress=None,
    )
    # generic checks ran, on the app's own saga
    assert report.app == "rooms" and report.scenario is None
    assert report.sagas_checked == ["RoomSaga"]
    assert report.events == 600 and report.sagas == 12
    assert report.lost == 0, report.examples
    assert report.order_violations == 0, report.examples
    assert report.sagas_unfinished == 0, report.examples
    assert report.compensation_order_violations == 0, report.examples
    assert (report.sagas_completed, report.sagas_compensated, report.sagas_compensation_failed) == (8, 4, 0)
    assert set(cancelled) and set(cancelled) <= set(booked)  # the declined ones were undone
    assert report.kills >= 1
    assert report.faults.get("duplicate_deliveries", 0) + report.faults.get("dispatcher_crashes", 0) > 0
    assert report.ok
    # ...and the domain checks are reported as skipped, not as passed
    assert report.duplicate_side_effects is None and report.effects_left_behind is None
    assert set(report.checks_skipped) == set(DOMAIN_CHECKS)
    as_json = json.loads(json.dumps(report.as_dict()))
    assert as_json["checks_skipped"] == dict(DOMAIN_CHECKS) and as_json["duplicate_side_effects"] is None
    table = format_table(report)
    assert "rooms (none: generic checks only)" in table
    assert "skipped: duplicate_side_effects" in table and "OK (generic checks)" in table
