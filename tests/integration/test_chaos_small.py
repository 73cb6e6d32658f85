"""A small ``saga-outbox chaos`` run of the orders example with its scenario: every fault,
every invariant (the domain ones included), in well under a minute."""

from __future__ import annotations

import argparse
import json

import pytest

from saga_outbox.local.chaos import ChaosOptions, run_chaos
from saga_outbox.local.chaos.cli import format_table, register

ORDERS_APP = "examples.orders.app:app"
ORDERS_SCENARIO = "examples.orders.chaos:scenario"

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(420)]


def test_small_chaos_run_keeps_every_invariant(database_url: str, aws_env: None) -> None:
    report = run_chaos(
        ChaosOptions(
            events=3_000,
            sagas=30,
            kills=6,
            seed=11,
            database_url=database_url,
            sqs_outages=2,
            sqs_outage_seconds=3.0,
            stalls=2,
            table_lock_interval_seconds=4.0,
            foreign_transaction_seconds=5.0,
            # more than the default 2%, so that 30 sagas surely meet both
            step_exhausted_rate=0.05,
            step_idempotency_down_rate=0.05,
            # two saga events the dispatcher acknowledges and never starts: the reconciler's
            lost_dispatches=2,
        ),
        app=ORDERS_APP,
        scenario=ORDERS_SCENARIO,
        progress=None,
    )
    assert report.events == 3_000
    assert report.sagas == 30
    assert report.kills >= 3
    assert report.kills_after_send >= 1  # killed between SendMessageBatch and the mark
    assert report.lost == 0, report.examples
    assert report.duplicate_side_effects == 0, report.duplicate_side_effect_detail
    assert report.order_violations == 0, report.examples
    assert report.effects_left_behind == 0, report.effects_left_behind_detail
    assert report.sagas_unfinished == 0
    assert report.dead_rows == 0, report.examples
    assert report.compensation_order_violations == 0, report.examples
    assert report.sagas_checked == ["OrderSaga"]
    assert report.sagas_completed + report.sagas_compensated + report.sagas_compensation_failed == 30
    assert report.sagas_compensated >= 1  # the scenario's declined payments were compensated
    assert report.checks_skipped == {}  # the scenario supplies every domain check
    assert report.lost_detail["orders_without_saga"] == 0  # the scenario's own lost keys
    assert report.ok
    # the reconciler pass repaired the dropped dispatches before the saga checks counted
    assert report.faults["dispatches_dropped"] == 2
    assert report.reconciler["lost_dispatches_repaired"] == 2, report.reconciler
    assert report.reconciler["compensation_failed"] == report.sagas_compensation_failed
    assert (report.reconciler["stuck"], report.reconciler["start_failures"]) == (0, 0)
    # the faults really happened, and the layers really absorbed them
    assert report.faults.get("pg_connections_terminated", 0) > 0
    assert report.faults.get("dispatcher_crashes", 0) > 0
    assert report.faults.get("duplicate_deliveries", 0) > 0
    assert report.late_resends >= 1 and report.late_resends_received >= 1
    assert report.absorbed["sqs_dedup_window"] > 0
    assert report.absorbed["consumer_redeliveries"] > 0
    assert report.absorbed["step_idempotency"] > 0
    faults = report.faults
    assert faults["sqs_outages_connection"] == 1 and faults["sqs_credentials_expiries"] == 1
    assert faults["relay_requests_failed_connection"] + faults["relay_requests_failed_credentials"] > 0
    assert faults["relay_stalls"] == 2
    assert faults.get("outbox_table_locks", 0) + faults.get("leased_row_locks", 0) > 0
    assert faults["relay_lock_timeouts"] + faults["relay_statement_timeouts"] > 0
    assert faults["foreign_write_transactions"] >= 1
    assert faults["step_unknown_outcomes_exhausted"] > 0 and faults["step_idempotency_store_down"] > 0
    table = format_table(report)
    assert "orders (examples.orders.chaos:scenario)" in table and "skipped" not in table
    assert "reconciler: lost dispatches repaired" in table


def test_cli_registers_chaos_with_defaults() -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["chaos", "--json", "--app", ORDERS_APP, "--scenario", ORDERS_SCENARIO])
    assert (args.app, args.scenario) == (ORDERS_APP, ORDERS_SCENARIO)
    assert (args.events, args.sagas, args.relays, args.kills) == (100_000, 1_000, 3, 20)
    assert (args.sqs_outages, args.sqs_outage_seconds, args.stalls) == (2, 30.0, 6)
    assert args.lost_dispatches == 0
    assert args.foreign_transaction_seconds == 30.0 and args.step_exhausted_rate == 0.02
    assert args.entry_failure_rate == 0.05 and args.throttle_rate == 0.05
    assert callable(args.func)


def test_cli_rejects_bad_rates(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["chaos", "--app", ORDERS_APP, "--throttle-rate", "1.5"])
    assert args.func(args) == 2
    assert "--throttle-rate" in capsys.readouterr().err


def test_scenario_must_fit_its_app() -> None:
    """The orders scenario refuses another app, before anything starts."""
    from saga_outbox import AppError, SagaApp
    from saga_outbox.local.chaos.scenario import load_scenario

    with pytest.raises(AppError, match="orders app"):
        load_scenario(ORDERS_SCENARIO, SagaApp("rooms"), run_id="x")
    with pytest.raises(AppError, match="module:attr"):
        load_scenario("examples.orders.chaos", SagaApp("rooms"), run_id="x")
    json.dumps({})  # keep the import honest for --json users
