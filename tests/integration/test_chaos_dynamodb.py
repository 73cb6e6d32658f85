"""``saga-outbox chaos --source dynamodb`` at a small scale: the probe events go through the
DynamoDB outbox, its stream and the stream consumer under its faults (entry failures,
throttling, crashes after sending), and the checker's keys hold."""

from __future__ import annotations

import pytest

from saga_outbox.local.chaos import ChaosOptions, run_chaos

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]


def test_small_dynamodb_chaos_run_keeps_every_invariant(database_url: str, aws_env: None) -> None:
    report = run_chaos(
        ChaosOptions(
            source="dynamodb",
            events=200,
            sagas=2,
            kills=2,
            seed=5,
            database_url=database_url,
            sqs_outages=0,
            stalls=0,
            table_lock_interval_seconds=0,
            foreign_transaction_seconds=0,
            entry_failure_rate=0.1,
            throttle_rate=0.1,
            dispatcher_crash_rate=0.2,  # the stream consumer's crash rate too
        ),
        app="examples.orders.app:app",
        scenario="examples.orders.chaos:scenario",
        progress=None,
    )
    assert report.events == 200
    assert report.lost == 0, report.examples
    assert report.order_violations == 0, report.examples
    assert report.duplicate_side_effects == 0
    assert report.sagas_unfinished == 0
    assert report.ok
    faults = report.faults
    assert faults["ddb_transactions"] == 20
    assert faults["stream_entry_failures_injected"] > 0
    assert faults["stream_throttles_injected"] > 0
    assert faults["stream_consumer_crashes"] > 0
    assert faults["stream_handler_errors"] == faults["stream_consumer_crashes"]
    assert faults["stream_batch_item_failures"] > 0
    assert faults["stream_records_discarded"] == 0
