"""The chaos checker must be able to fail: broken relays lose events, a second payment is a
duplicate side effect, a cancelled order that kept its payment is an effect left behind, a
reordered group and a compensation out of order are reported."""

from __future__ import annotations

import random
import time
import uuid

import pytest

from examples.orders.chaos import OrdersScenario
from examples.orders.workflows import ORDER_SAGA
from saga_outbox import Step, Workflow
from saga_outbox.local.chaos import ChaosOptions, History, check_run
from saga_outbox.local.chaos.checker import compensation_order_violation, order_violations
from saga_outbox.local.chaos.harness import PLAIN_EVENT_TYPE, run_chaos

ORDERS_APP = "examples.orders.app:app"

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
    "step_exhausted_rate": 0.0,
    "step_idempotency_down_rate": 0.0,
    "sqs_outages": 0,
    "stalls": 0,
    "table_lock_interval_seconds": 0.0,
    "foreign_transaction_seconds": 0.0,
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
        app=ORDERS_APP,  # no scenario: loss is a generic check
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
        app=ORDERS_APP,  # no scenario: loss is a generic check
        progress=None,
    )
    assert report.lost > 0
    assert report.lost_detail["never_received"] > 0
    assert report.lost_detail["outbox_unpublished"] == 0
    assert report.events == 600  # this run's rows only
    assert not report.ok


def test_duplicate_payment_and_effects_left_behind_are_reported(database_url: str, aws_env: None) -> None:
    """A clean run of the orders scenario, then a second payment row for one order under
    another key, and another order marked cancelled while its effects stay in place."""
    from saga_outbox.local.runtime import LocalOptions, LocalRuntime

    scenario = OrdersScenario(
        orders_schema=f"o_{uuid.uuid4().hex[:8]}", fail_payment=0.0, fail_shipping=0.0, fail_refund=0.0
    )
    with LocalRuntime(
        scenario.app, LocalOptions(database_url=database_url, outbox_schema=f"c_{uuid.uuid4().hex[:8]}")
    ) as rt:
        assert rt.engine is not None
        outbox = rt.options.outbox_schema
        rng = random.Random(0)
        for _ in range(3):
            with rt.engine.begin() as c:
                scenario.start(c, rng=rng, outbox_schema=outbox)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            sagas = rt.executions("OrderSaga")
            if len(sagas) == 3 and all(e["status"] != "RUNNING" for e in sagas):
                break
            time.sleep(0.5)
        rt.stop_workers()
        o = scenario.orders_schema
        with rt.engine.begin() as c:
            c.exec_driver_sql(
                f'INSERT INTO "{o}".payments (idempotency_key, execution_name, order_id, amount_cents) '
                "SELECT idempotency_key || '-again', execution_name, order_id, amount_cents "
                f'FROM "{o}".payments ORDER BY order_id LIMIT 1'
            )
            c.exec_driver_sql(
                f"UPDATE \"{o}\".orders SET status = 'CANCELLED' "
                f'WHERE id = (SELECT max(order_id::text)::uuid FROM "{o}".payments)'
            )
        kwargs = {
            "sfn_client": rt.clients["stepfunctions"],
            "state_machine_arns": rt.state_machine_arns,
            "outbox_schema": outbox,
        }
        domain = scenario.audit(rt.engine, **kwargs)  # type: ignore[arg-type]
        # receipts are not recorded here: look only at side effects
        report = check_run(
            History(), rt.engine, app=scenario.app, plain_event_type=PLAIN_EVENT_TYPE, domain=domain, **kwargs
        )
        generic = check_run(
            History(), rt.engine, app=scenario.app, plain_event_type=PLAIN_EVENT_TYPE, **kwargs
        )
    assert report.duplicate_side_effects == 1
    assert report.duplicate_side_effect_detail["payments"] == 1
    assert report.effects_left_behind == 3, report.effects_left_behind_detail
    assert report.effects_left_behind_detail == {
        "payments_not_refunded": 1,
        "reservations_not_released": 1,
        "shipments_of_cancelled_orders": 1,
    }
    assert report.checks_skipped == {}
    assert report.sagas_completed == 3 and report.compensation_order_violations == 0
    assert not report.ok
    # without the scenario's audit the same tables pass these checks unseen: reported as skipped
    assert generic.duplicate_side_effects is None and generic.effects_left_behind is None
    assert {"duplicate_side_effects", "effects_left_behind"} <= set(generic.checks_skipped)


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
    assert compensation_order_violation(happy, ORDER_SAGA) is None
    # CreateShipment rejected: the steps before it, in reverse
    good = [
        "Start",
        "ReserveInventory",
        "ChargePayment",
        "CreateShipment",
        "CreateShipmentFailed",
        "CompensateChargePayment",
        "CompensateReserveInventory",
        "CancelOrder",
        "MarkCompensated",
    ]
    assert compensation_order_violation(good, ORDER_SAGA) is None
    assert compensation_order_violation(good, ORDER_SAGA, failure_error="Rejected.ShipmentFailed") is None
    # ... but after an unknown outcome the shipment itself must have been cancelled first
    unknown = compensation_order_violation(good, ORDER_SAGA, failure_error="States.Timeout")
    assert "CompensateCreateShipment" in (unknown or "")
    undone_too = [*good[:5], "CompensateCreateShipment", *good[5:]]
    assert compensation_order_violation(undone_too, ORDER_SAGA, failure_error="Lambda.Unknown") is None
    assert compensation_order_violation(undone_too, ORDER_SAGA) is None
    # a rejected step undone anyway, or its own compensation out of place, is reported
    assert compensation_order_violation(undone_too, ORDER_SAGA, failure_error="Rejected.X") is not None
    late_own = [*good[:7], "CompensateCreateShipment", *good[7:]]
    assert compensation_order_violation(late_own, ORDER_SAGA) is not None
    swapped = [*good[:5], "CompensateReserveInventory", "CompensateChargePayment", *good[7:]]
    assert compensation_order_violation(swapped, ORDER_SAGA) is not None
    missing = [*good[:5], "CompensateChargePayment", "CancelOrder", "MarkCompensated"]
    assert compensation_order_violation(missing, ORDER_SAGA) is not None
    twice = [*good[:6], "CompensateChargePayment", *good[6:]]
    assert "twice" in (compensation_order_violation(twice, ORDER_SAGA) or "")
    refund_failed = [*good[:6], "CompensationFailed"]
    assert compensation_order_violation(refund_failed, ORDER_SAGA) is None
    wrong_prefix = [*good[:5], "CompensateReserveInventory", "CompensationFailed"]
    assert compensation_order_violation(wrong_prefix, ORDER_SAGA) is not None
    # the pivot (ConfirmOrder) rejected: every step undone, the latest first
    pivot = [*happy[:5], "ConfirmOrderFailed", "CompensateCreateShipment", *good[5:]]
    assert compensation_order_violation(pivot, ORDER_SAGA, failure_error="Rejected.X") is None
    assert compensation_order_violation([*pivot[:6], *good[5:]], ORDER_SAGA) is not None


def test_compensation_order_of_a_saga_without_hooks() -> None:
    """The rule comes from the workflow, not from order names: a two-step saga with neither
    on_success nor on_compensated."""
    wf = Workflow(
        name="RoomSaga",
        steps=[
            Step(name="BookRoom", action="book_room", compensation="cancel_room"),
            Step(name="ChargeCard", action="charge_card"),
        ],
    )
    assert compensation_order_violation(["BookRoom", "ChargeCard", "MarkCompleted"], wf) is None
    undone = ["BookRoom", "ChargeCard", "ChargeCardFailed", "CompensateBookRoom", "MarkCompensated"]
    assert compensation_order_violation(undone, wf) is None
    not_undone = ["BookRoom", "ChargeCard", "ChargeCardFailed", "MarkCompensated"]
    assert compensation_order_violation(not_undone, wf) is not None
    rejected = ["BookRoom", "BookRoomFailed", "MarkCompensated"]
    assert compensation_order_violation(rejected, wf, failure_error="Rejected.X") is None  # nothing done
    # BookRoom's outcome unknown: it must be undone itself
    assert compensation_order_violation(rejected, wf, failure_error="States.Timeout") is not None
    unknown = ["BookRoom", "BookRoomFailed", "CompensateBookRoom", "MarkCompensated"]
    assert compensation_order_violation(unknown, wf, failure_error="States.Timeout") is None
    assert compensation_order_violation(unknown, wf, failure_error="Rejected.X") is not None


def test_lost_dispatches_are_repaired_by_the_reconciler_and_reported(
    database_url: str, aws_env: None
) -> None:
    """The dispatcher acknowledges two saga events whose Standard start silently did nothing
    (every delivery; their Express projection starts):
    the reconciler pass at the end starts both under the dispatcher's name, they finish, and
    the run passes while its report says what was repaired."""
    from saga_outbox.workflows import execution_name

    report = run_chaos(
        ChaosOptions(
            events=50,
            sagas=6,
            kills=0,
            seed=8,
            database_url=database_url,
            lost_dispatches=2,
            **{**_QUIET, "settle_timeout_seconds": 240.0},  # type: ignore[arg-type]
        ),
        app=ORDERS_APP,
        scenario="examples.orders.chaos:scenario",
        progress=None,
    )
    assert report.faults["dispatches_dropped"] == 2
    found = report.reconciler
    assert (found["lost_dispatches_found"], found["lost_dispatches_repaired"]) == (2, 2)
    assert [r["workflow"] for r in found["repaired"]] == ["OrderSaga", "OrderSaga"]
    for r in found["repaired"]:
        assert r["execution_name"] == execution_name("OrderSaga", r["event_id"])
    assert (found["start_failures"], found["stuck"]) == (0, 0)
    assert found["compensation_failed"] == report.sagas_compensation_failed
    # counted after the repair: every saga started and finished, nothing lost
    assert report.lost == 0 and report.lost_detail["sagas_not_started"] == 0, report.examples
    assert report.sagas_unfinished == 0
    assert report.sagas_completed + report.sagas_compensated + report.sagas_compensation_failed == 6
    assert report.ok
    assert report.as_dict()["reconciler"] == found
