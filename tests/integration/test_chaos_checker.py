"""The chaos checker must be able to fail: broken relays lose events, a second payment is a
duplicate side effect, a reordered group and a compensation out of order are reported."""

from __future__ import annotations

import random
import uuid

import pytest

from saga_outbox.local.chaos import ChaosOptions, History, check_run
from saga_outbox.local.chaos.checker import compensation_order_violation, order_violations
from saga_outbox.local.chaos.harness import PLAIN_EVENT_TYPE, run_chaos

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(420)]

_QUIET = {
    "step_failure_rate": 0.0,
    "step_lost_response_rate": 0.0,
    "step_timeout_rate": 0.0,
    "step_duplicate_rate": 0.0,
    "duplicate_delivery_rate": 0.0,
    "dispatcher_crash_rate": 0.0,
    "late_resend_rate": 0.0,
    "db_kill_interval_seconds": 0.0,
    "settle_timeout_seconds": 20.0,
}


def test_relay_that_marks_before_it_sends_loses_events(database_url: str, aws_env: None) -> None:
    report = run_chaos(
        ChaosOptions(
            events=600,
            sagas=0,
            kills=0,
            seed=5,
            database_url=database_url,
            relay_mode="mark_before_send",
            crash_after_mark_rate=0.05,
            **_QUIET,  # type: ignore[arg-type]
        ),
        progress=None,
    )
    assert report.lost > 0
    assert report.lost_detail["never_received"] > 0
    assert report.lost_detail["outbox_unpublished"] == 0  # the outbox believes all is well
    assert report.events == 600  # this run's rows only
    assert not report.ok


def test_relay_that_drops_failed_entries_loses_events(database_url: str, aws_env: None) -> None:
    report = run_chaos(
        ChaosOptions(
            events=600,
            sagas=0,
            kills=0,
            seed=6,
            database_url=database_url,
            relay_mode="drop_failed",
            entry_failure_rate=0.1,
            **_QUIET,  # type: ignore[arg-type]
        ),
        progress=None,
    )
    assert report.lost > 0
    assert report.lost_detail["never_received"] > 0
    assert report.lost_detail["outbox_unpublished"] == 0
    assert report.events == 600  # this run's rows only
    assert not report.ok


def test_duplicate_payment_is_reported(database_url: str, aws_env: None) -> None:
    """A clean run, then a second payment row for one order under another key."""
    from saga_outbox.local.runtime import LocalOptions, LocalRuntime

    # reuse the harness's checker over a tiny real run on a fresh schema pair
    with LocalRuntime(
        LocalOptions(
            database_url=database_url,
            outbox_schema=f"c_{uuid.uuid4().hex[:8]}",
            orders_schema=f"o_{uuid.uuid4().hex[:8]}",
        )
    ) as rt:
        from examples.orders.demo import DemoOptions, place_orders

        assert rt.engine is not None
        opts = DemoOptions(orders=3, fail_payment=0.0, fail_shipping=0.0, duplicate_rate=0.0)
        place_orders(
            rt,
            opts,
            random.Random(0),
            {"fail_payment": 0, "fail_shipping": 0, "fail_refund": 0},
            first=0,
            count=3,
        )
        import time

        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            sagas = rt.executions("OrderSaga")
            if len(sagas) == 3 and all(e["status"] != "RUNNING" for e in sagas):
                break
            time.sleep(0.5)
        rt.stop_workers()
        history = History()  # receipts are not recorded here: look only at side effects
        o = rt.options.orders_schema
        with rt.engine.begin() as c:
            c.exec_driver_sql(
                f'INSERT INTO "{o}".payments (idempotency_key, execution_name, order_id, amount_cents) '
                "SELECT idempotency_key || '-again', execution_name, order_id, amount_cents "
                f'FROM "{o}".payments '
                "LIMIT 1"
            )
        report = check_run(
            history,
            rt.engine,
            sfn_client=rt.clients["stepfunctions"],
            state_machine_arns=rt.state_machine_arns,
            outbox_schema=rt.options.outbox_schema,
            orders_schema=o,
            plain_event_type=PLAIN_EVENT_TYPE,
        )
    assert report.duplicate_side_effects == 1
    assert report.duplicate_side_effect_detail["payments"] == 1
    assert not report.ok


def test_order_violation_and_redelivery() -> None:
    rank = {"a": ("g", 1), "b": ("g", 2), "c": ("g", 3), "x": ("h", 1)}
    # b, then a (violation); a again later is a redelivery, not another violation
    violations, redeliveries, examples = order_violations(
        [("g", "b"), ("h", "x"), ("g", "a"), ("g", "c"), ("g", "a")], rank
    )
    assert (violations, redeliveries) == (1, 1)
    assert "g" in examples[0]
    assert order_violations([("g", "a"), ("g", "b"), ("g", "a"), ("g", "c")], rank)[:2] == (0, 1)


def test_compensation_order() -> None:
    happy = ["Start", "ReserveInventory", "ChargePayment", "CreateShipment", "ConfirmOrder", "MarkCompleted"]
    assert compensation_order_violation(happy) is None
    good = [
        "Start",
        "ReserveInventory",
        "ChargePayment",
        "CreateShipment",
        "CompensateChargePayment",
        "CompensateReserveInventory",
        "CancelOrder",
        "MarkCompensated",
    ]
    assert compensation_order_violation(good) is None
    swapped = [*good[:4], "CompensateReserveInventory", "CompensateChargePayment", *good[6:]]
    assert compensation_order_violation(swapped) is not None
    missing = [*good[:4], "CompensateChargePayment", "CancelOrder", "MarkCompensated"]
    assert compensation_order_violation(missing) is not None
    refund_failed = [*good[:5], "CompensationFailed"]
    assert compensation_order_violation(refund_failed) is None
