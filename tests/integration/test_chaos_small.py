"""A small ``saga-outbox chaos`` run: every fault, every invariant, in a few minutes."""

from __future__ import annotations

import argparse
import json

import pytest

from saga_outbox.local.chaos import ChaosOptions, run_chaos
from saga_outbox.local.chaos.cli import register

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(420)]


def test_small_chaos_run_keeps_every_invariant(database_url: str, aws_env: None) -> None:
    report = run_chaos(
        ChaosOptions(events=3_000, sagas=30, kills=6, seed=11, database_url=database_url),
        progress=None,
    )
    assert report.events == 3_000
    assert report.sagas == 30
    assert report.kills >= 3
    assert report.kills_after_send >= 1  # killed between SendMessageBatch and the mark
    assert report.lost == 0, report.examples
    assert report.duplicate_side_effects == 0, report.duplicate_side_effect_detail
    assert report.order_violations == 0, report.examples
    assert report.sagas_unfinished == 0
    assert report.compensation_order_violations == 0, report.examples
    assert report.ok
    # the faults really happened, and the layers really absorbed them
    assert report.faults.get("pg_connections_terminated", 0) > 0
    assert report.faults.get("dispatcher_crashes", 0) > 0
    assert report.faults.get("duplicate_deliveries", 0) > 0
    assert report.late_resends >= 1 and report.late_resends_received >= 1
    assert report.absorbed["sqs_dedup_window"] > 0
    assert report.absorbed["consumer_redeliveries"] > 0
    assert report.absorbed["step_idempotency"] > 0


def test_cli_registers_chaos_with_defaults() -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["chaos", "--json"])
    assert (args.events, args.sagas, args.relays, args.kills) == (100_000, 1_000, 3, 20)
    assert args.entry_failure_rate == 0.05 and args.throttle_rate == 0.05
    assert callable(args.func)


def test_cli_rejects_bad_rates(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["chaos", "--throttle-rate", "1.5"])
    assert args.func(args) == 2
    assert "--throttle-rate" in capsys.readouterr().err
    json.dumps({})  # keep the import honest for --json users
