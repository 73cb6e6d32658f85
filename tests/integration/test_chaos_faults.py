"""The checker must catch the fault classes of issue 11 that the harness now injects: each
test runs a deliberately broken relay or saga layer under the fault that exposes it (and, where
cheap, the correct one under the same fault as the control)."""

from __future__ import annotations

import pytest

from saga_outbox.local.chaos import ChaosOptions, run_chaos

ORDERS_APP = "examples.orders.app:app"
ORDERS_SCENARIO = "examples.orders.chaos:scenario"

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(420)]

# every fault off; each test turns on the one it is about
_QUIET = {
    "kills": 0,
    "entry_failure_rate": 0.0,
    "throttle_rate": 0.0,
    "step_failure_rate": 0.0,
    "step_lost_response_rate": 0.0,
    "step_timeout_rate": 0.0,
    "step_exhausted_rate": 0.0,
    "step_idempotency_down_rate": 0.0,
    "step_duplicate_rate": 0.0,
    "duplicate_delivery_rate": 0.0,
    "dispatcher_crash_rate": 0.0,
    "late_resend_rate": 0.0,
    "db_kill_interval_seconds": 0.0,
    "sqs_outages": 0,
    "stalls": 0,
    "table_lock_interval_seconds": 0.0,
    "foreign_transaction_seconds": 0.0,
    "settle_timeout_seconds": 25.0,
}


def _options(**kw: object) -> ChaosOptions:
    return ChaosOptions(**{**_QUIET, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["correct", "charge_request_failures"])
def test_an_outage_charged_to_rows_leaves_dead_rows(database_url: str, aws_env: None, mode: str) -> None:
    """One SQS outage (connection refused) of ~8 s with max_attempts=3: the correct relay backs
    off and loses nothing; one that charges the rows' attempts for it kills them."""
    report = run_chaos(
        _options(
            events=600,
            sagas=0,
            seed=21,
            database_url=database_url,
            relay_mode=mode,
            relay_max_attempts=3,
            sqs_outages=1,
            sqs_outage_seconds=8.0,
        ),
        app=ORDERS_APP,
        progress=None,
    )
    assert report.faults["sqs_outages_connection"] == 1
    assert report.faults["relay_requests_failed_connection"] > 0  # the relays met it
    if mode == "correct":
        assert report.dead_rows == 0 and report.lost == 0, report.examples
        assert report.ok
    else:
        assert report.dead_rows > 0
        assert len(report.examples["dead"]) > 0
        assert not report.ok
        assert "dead_rows" in report.as_dict()


def test_a_pipeline_ended_by_a_database_error_is_caught(database_url: str, aws_env: None) -> None:
    """Lock and statement timeouts (the chaos locker against a relay with lock_timeout=300ms)
    and dropped connections: a relay whose pipelines stop on a database error leaves rows
    pending, which the checker reports as lost."""
    report = run_chaos(
        _options(
            events=1_500,
            sagas=0,
            seed=22,
            relays=1,
            database_url=database_url,
            relay_mode="hang_on_database_error",
            table_lock_interval_seconds=1.0,
            table_lock_seconds=1.0,
            db_kill_interval_seconds=1.0,
            # the producer waits for the consumers (max_backlog); with nobody publishing, it
            # would wait for the whole default hour
            timeout_seconds=40.0,
            settle_timeout_seconds=10.0,
        ),
        app=ORDERS_APP,
        progress=None,
    )
    assert report.faults.get("outbox_table_locks", 0) + report.faults.get("leased_row_locks", 0) > 0
    assert report.lost > 0
    assert report.lost_detail["outbox_unpublished"] > 0  # still pending: nobody serves them
    assert not report.ok


def test_an_unknown_outcome_not_undone_is_an_effect_left_behind(database_url: str, aws_env: None) -> None:
    """Steps that commit and then fail on every retry: the sagas must undo them too. A saga
    layer that skips the failed step's own compensation leaves its effect on a cancelled order;
    only the scenario's audit sees it (the execution's states look right)."""
    report = run_chaos(
        _options(
            events=0,
            sagas=12,
            seed=23,
            database_url=database_url,
            step_exhausted_rate=0.4,
            steps_mode="skip_own_compensation",
            settle_timeout_seconds=120.0,
        ),
        app=ORDERS_APP,
        scenario=ORDERS_SCENARIO,
        progress=None,
    )
    assert report.faults.get("step_unknown_outcomes_exhausted", 0) > 0
    assert report.effects_left_behind, report.effects_left_behind_detail
    assert report.compensation_order_violations == 0  # the state sequence alone looks fine
    assert not report.ok
