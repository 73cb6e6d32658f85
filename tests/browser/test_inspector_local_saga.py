"""The inspector page in headless Chromium on a real OrderSaga run by the local runtime:
the failed step is red and the compensations are drawn as compensated."""

from __future__ import annotations

import time

import pytest

from examples.orders.commands import place_order
from saga_outbox.inspector import serve_inspector
from saga_outbox.local.runtime import LocalOptions, LocalRuntime

pytestmark = pytest.mark.browser


def test_page_shows_failed_payment_and_released_inventory(browser_page, database_url, aws_env, tmp_path):
    runtime = LocalRuntime(
        LocalOptions(database_url=database_url, outbox_schema="page_outbox", orders_schema="page_orders")
    )
    runtime.start()
    try:
        with runtime.engine.begin() as conn:  # type: ignore[union-attr]
            place_order(
                conn,
                customer_id="c",
                items=[{"sku": "s", "qty": 1}],
                amount_cents=5,
                simulate={"fail_payment": True},
                outbox_schema="page_outbox",
                orders_schema="page_orders",
            )
        deadline = time.monotonic() + 60
        sagas: list = []
        while time.monotonic() < deadline:
            sagas = runtime.executions("OrderSaga")
            if sagas and sagas[0]["status"] != "RUNNING":
                break
            time.sleep(0.2)
        arn = sagas[0]["executionArn"]
        with serve_inspector(sfn_client=runtime.clients["stepfunctions"]) as server:
            page = browser_page
            page.goto(server.execution_url(arn))
            page.wait_for_selector('#graph g[data-state="ChargePayment"]')
            outcome = {
                name: page.locator(f'#graph g[data-state="{name}"]').get_attribute("data-outcome")
                for name in (
                    "ReserveInventory",
                    "ChargePayment",
                    "CreateShipment",
                    "CompensateReserveInventory",
                    "CancelOrder",
                    "ConfirmOrder",
                )
            }
            page.screenshot(path=str(tmp_path / "order-saga.png"), full_page=True)
    finally:
        runtime.stop()
    assert outcome["ChargePayment"] == "failed"
    assert outcome["ReserveInventory"] == "compensated"
    assert outcome["CompensateReserveInventory"] == "succeeded"
    assert outcome["CancelOrder"] == "succeeded"
    assert outcome["CreateShipment"] == outcome["ConfirmOrder"] == "not_reached"
