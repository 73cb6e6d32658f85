"""The inspector page in real headless Chromium: graph coloured by outcome, legend, events table."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.request import urlopen

import pytest

from saga_outbox.inspector import serve_inspector

pytestmark = pytest.mark.browser

EXPECTED = {
    "ReserveStock": "compensated",
    "ChargePayment": "compensated",
    "ShipOrder": "failed",
    "Done": "not_reached",
    "CompensateChargePayment": "succeeded",
    "CompensateReserveStock": "succeeded",
    "SagaCompensated": "failed",
    "SagaFailed": "not_reached",
    "CompensationFailed": "not_reached",
}
COLOURS = {  # computed fill of each outcome (CSS custom properties in the page)
    "succeeded": "rgb(46, 125, 50)",
    "failed": "rgb(198, 40, 40)",
    "compensated": "rgb(239, 108, 0)",
    "not_reached": "rgb(158, 158, 158)",
}


def test_execution_page_shows_failure_and_compensations(
    compensated_saga: dict[str, Any], browser_page: Any, tmp_path: Path
) -> None:
    arn = compensated_saga["execution_arn"]
    with serve_inspector(sfn_client=compensated_saga["sfn"]) as server:
        page = browser_page
        page.goto(server.execution_url(arn))
        page.wait_for_selector("body[data-loaded=true]", timeout=15_000)

        nodes = page.locator("#graph g[data-state]")
        assert nodes.count() == len(EXPECTED)
        outcomes = {
            nodes.nth(i).get_attribute("data-state"): nodes.nth(i).get_attribute("data-outcome")
            for i in range(nodes.count())
        }
        assert outcomes == EXPECTED
        for name, outcome in EXPECTED.items():
            fill = page.eval_on_selector(
                f'#graph g[data-state="{name}"] rect', "r => getComputedStyle(r).fill"
            )
            assert fill == COLOURS[outcome], (name, outcome, fill)
        comp_nodes = page.locator('#graph g[data-compensation="true"]')
        assert sorted(comp_nodes.nth(i).get_attribute("data-state") for i in range(comp_nodes.count())) == [
            "CompensateChargePayment",
            "CompensateReserveStock",
        ]

        assert page.locator("#execution-status").get_attribute("data-status") == "FAILED"
        assert page.locator("#saga-outcome").get_attribute("data-outcome") == "compensated"
        assert (
            page.locator("#compensations").inner_text() == "CompensateChargePayment, CompensateReserveStock"
        )
        legend = page.locator("#legend").inner_text()
        for word in ("succeeded", "failed", "compensated", "running", "not reached"):
            assert word in legend

        # the event table sits beside the graph and carries the failure
        failed_row = page.locator('#events tr[data-event-type="TaskFailed"]')
        assert failed_row.count() == 1
        assert failed_row.get_attribute("data-state") == "ShipOrder"
        assert "ResourceNotFoundException" in failed_row.inner_text()
        graph_box = page.locator("#graph").bounding_box()
        events_box = page.locator("#events").bounding_box()
        assert events_box["x"] > graph_box["x"] + graph_box["width"] - 1

        # clicking a node filters the events to that state
        page.click('#graph g[data-state="CompensateReserveStock"]')
        states = page.locator("#events tbody tr").evaluate_all("rows => rows.map(r => r.dataset.state)")
        assert states and set(states) == {"CompensateReserveStock"}

        page.screenshot(path=str(tmp_path / "execution.png"), full_page=True)
        assert (tmp_path / "execution.png").stat().st_size > 10_000


def test_index_lists_executions_and_api_reports_missing(
    compensated_saga: dict[str, Any], browser_page: Any, tmp_path: Path
) -> None:
    arn = compensated_saga["execution_arn"]
    with serve_inspector(sfn_client=compensated_saga["sfn"]) as server:
        page = browser_page
        page.goto(server.url + "/")
        page.wait_for_selector("body[data-loaded=true]", timeout=15_000)
        assert "OrderSaga" in page.locator("#state-machines").inner_text()
        row = page.locator(f'#executions tr[data-execution="{arn}"]')
        assert row.get_attribute("data-status") == "FAILED"
        row.locator("a").click()
        page.wait_for_selector("#graph g[data-state]", timeout=15_000)
        assert page.locator('#graph g[data-state="ShipOrder"]').get_attribute("data-outcome") == "failed"

        page.goto(server.url + "/?status=SUCCEEDED")
        page.wait_for_selector("body[data-loaded=true]", timeout=15_000)
        assert page.locator("#executions tr[data-execution]").count() == 0
        page.screenshot(path=str(tmp_path / "index.png"))

        missing = arn.rsplit(":", 1)[0] + ":nope"
        page.goto(server.execution_url(missing))
        page.wait_for_selector("#error:not([hidden])", timeout=15_000)
        assert f"execution not found: {missing}" in page.locator("#error").inner_text()
        with urlopen(server.url + "/static/inspector.js") as response:
            assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
