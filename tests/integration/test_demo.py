"""`make demo` (python -m examples.orders demo) at small scale: the counts must add up, not just exit 0."""

from __future__ import annotations

import json

import pytest

from examples.orders.__main__ import main
from examples.orders.demo import DemoOptions, run_demo
from saga_outbox.local.runtime import LocalOptions

pytestmark = pytest.mark.integration


def test_demo_counts_add_up(database_url, aws_env):
    opts = DemoOptions(
        orders=12,
        orders_schema="demo_orders",
        fail_payment=0.25,
        fail_shipping=0.25,
        fail_refund=0.0,
        duplicate_rate=0.5,
        seed=3,
        timeout_seconds=240,
    )
    result = run_demo(
        opts,
        local=LocalOptions(
            database_url=database_url,
            outbox_schema="demo_outbox",
            duplicate_rate=0.5,
            seed=3,
        ),
        progress=None,
    )
    a = result.audit
    assert a.ok, a.as_dict()
    assert a.orders == 12 == a.standard_executions
    assert a.sagas_completed + a.sagas_compensated + a.sagas_compensation_failed == 12
    assert a.sagas_compensated == result.placed["fail_payment"] + result.placed["fail_shipping"] > 0
    # one OrderPlaced and one OrderConfirmed/OrderCancelled per order, all published
    assert a.outbox_rows == a.outbox_published == 24
    # every event reaches the projection at least once; Express is at-least-once, so duplicate
    # deliveries may start extra executions, whose effects the projection absorbs
    assert a.express_executions >= 24
    assert result.duplicate_deliveries > 0, "the demo should exercise duplicate deliveries"
    assert a.duplicate_side_effects == 0 and a.events_lost == 0


def test_demo_json_via_cli_reports_compensation_failed(database_url, aws_env, capsys):
    code = main(
        [
            "demo",
            "--orders",
            "6",
            "--fail-payment",
            "0",
            "--fail-shipping",
            "0.5",
            "--fail-refund",
            "1",
            "--duplicate-rate",
            "0",
            "--seed",
            "1",
            "--json",
            "--database-url",
            database_url,
        ]
    )
    out = capsys.readouterr().out
    data, end = json.JSONDecoder().raw_decode(out)
    assert out[end:].strip() == "", f"stdout must hold only the JSON, got also: {out[end : end + 500]!r}"
    assert code == 0, data
    assert data["sagas_compensation_failed"] == data["placed_with_failures"]["fail_refund"] > 0
    assert data["sagas_unfinished"] == 0 and data["ok"] is True


def test_demo_refuses_bad_rates(capsys):
    assert main(["demo", "--fail-payment", "1.5"]) == 2
    assert "--fail-payment must be between 0 and 1, got 1.5" in capsys.readouterr().err
