"""The inspector page in real headless Chromium on real runs of the orders example: graph
coloured by outcome, saga outcome in the list and on the page, and a layout that fits 1400 px."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.request import urlopen

import pytest

from saga_outbox.inspector import serve_inspector

pytestmark = pytest.mark.browser

EXPECTED = {  # a rejected shipment: both earlier steps undone, then the on_compensated hook
    "Start": "succeeded",
    "ReserveInventory": "compensated",
    "ReserveInventoryFailed": "not_reached",
    "ChargePayment": "compensated",
    "ChargePaymentFailed": "not_reached",
    "CreateShipment": "failed",
    "CreateShipmentFailed": "succeeded",  # the path went through it: rejected, so not undone itself
    "CompensateCreateShipment": "not_reached",
    "ConfirmOrder": "not_reached",
    "ConfirmOrderFailed": "not_reached",
    "ConfirmOrderUnresolved": "not_reached",
    "MarkCompleted": "not_reached",
    "SagaCompleted": "not_reached",
    "CompensateChargePayment": "succeeded",
    "CompensateReserveInventory": "succeeded",
    "CancelOrder": "succeeded",
    "MarkCompensated": "succeeded",
    "SagaCompensated": "succeeded",
    "CompensationFailed": "not_reached",
}
COLOURS = {  # computed fill of each outcome (CSS custom properties in the page)
    "succeeded": "rgb(46, 125, 50)",
    "failed": "rgb(198, 40, 40)",
    "compensated": "rgb(239, 108, 0)",
    "not_reached": "rgb(158, 158, 158)",
}
HELPER_NOT_REACHED = "rgb(224, 224, 224)"  # a helper the path skipped stays in the background
SHAPES = {"box": "rect", "choice": "polygon", "connector": "circle"}
HELPERS = {  # a step's failure Choice, the pivot's Unresolved Pass: small, not boxes
    "ReserveInventoryFailed": "choice",
    "ChargePaymentFailed": "choice",
    "CreateShipmentFailed": "choice",
    "ConfirmOrderFailed": "choice",
    "ConfirmOrderUnresolved": "connector",
}

# Layout facts measured in the page: sideways scroll, tables wider than their pane, text that
# wraps after a few characters (the old events column wrapped error text per character), and
# badges broken over two lines.
LAYOUT_JS = """() => {
  const out = {narrow: [], badges: []};
  out.pageOverflow = document.documentElement.scrollWidth - window.innerWidth;
  const pane = document.querySelector(".events-pane"), table = document.querySelector("#events");
  if (table) {
    out.eventsOverflow = table.getBoundingClientRect().right - pane.getBoundingClientRect().right;
    out.eventsScroll = table.scrollWidth - table.clientWidth;
  }
  out.preWidths = [...document.querySelectorAll("#events pre")].map(p => p.getBoundingClientRect().width);
  const walker = document.createTreeWalker(document.querySelector("main"), NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.textContent.trim();
    if (text.length < 12 || node.parentElement.closest("svg, [hidden]")) continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    const lines = new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top)));
    if (lines.size && text.length / lines.size < 10) out.narrow.push([text.slice(0, 40), lines.size]);
  }
  for (const b of document.querySelectorAll(".status")) {
    const broken = b.getClientRects().length !== 1 || b.getBoundingClientRect().height > 24;
    if (broken) out.badges.push(b.textContent);
  }
  return out;
}"""


def _assert_fits(page: Any) -> None:
    layout = page.evaluate(LAYOUT_JS)
    assert layout["pageOverflow"] <= 0, layout  # no sideways scroll at 1400 px
    assert layout["narrow"] == [], layout["narrow"]  # no text wraps every few characters
    assert layout["badges"] == [], layout["badges"]  # every badge on one line
    if page.locator("#events").count():
        assert layout["eventsOverflow"] <= 1 and layout["eventsScroll"] <= 0, layout
        assert layout["preWidths"] and min(layout["preWidths"]) >= 400, layout["preWidths"]


def test_execution_page_shows_failure_compensations_and_fits(
    order_sagas: dict[str, Any], browser_page: Any, tmp_path: Path
) -> None:
    arn = order_sagas["compensated"]
    with serve_inspector(sfn_client=order_sagas["sfn"]) as server:
        page = browser_page
        page.goto(server.execution_url(arn))
        page.wait_for_selector("body[data-loaded=true]", timeout=15_000)
        assert page.viewport_size == {"width": 1400, "height": 900}

        nodes = page.locator("#graph g[data-state]")
        outcomes = {
            nodes.nth(i).get_attribute("data-state"): nodes.nth(i).get_attribute("data-outcome")
            for i in range(nodes.count())
        }
        assert outcomes == EXPECTED
        for name, outcome in EXPECTED.items():
            node = f'#graph g[data-state="{name}"]'
            shape = page.get_attribute(node, "data-shape")
            assert shape == HELPERS.get(name, "box"), name
            helper = name in HELPERS
            fill = page.eval_on_selector(f"{node} {SHAPES[shape]}.shape", "r => getComputedStyle(r).fill")
            expected = HELPER_NOT_REACHED if helper and outcome == "not_reached" else COLOURS[outcome]
            assert fill == expected, (name, outcome, fill)
        assert page.get_attribute('#graph g[data-state="CreateShipmentFailed"]', "data-helper-of") == (
            "CreateShipment"
        )
        # the branch taken out of the Choice is drawn bold and says which it was
        taken = page.locator('#graph path.edge.taken[data-source="CreateShipmentFailed"]')
        assert taken.count() == 1 and taken.get_attribute("data-branch") == "rejected"
        assert taken.get_attribute("data-target") == "CompensateChargePayment"
        assert "CreateShipmentFailed (rejected)" in page.locator("#path").inner_text()
        comp_nodes = page.locator('#graph g[data-compensation="true"]')
        assert sorted(comp_nodes.nth(i).get_attribute("data-state") for i in range(comp_nodes.count())) == [
            "CompensateChargePayment",
            "CompensateCreateShipment",
            "CompensateReserveInventory",
        ]
        assert page.locator("#execution-status").get_attribute("data-status") == "SUCCEEDED"
        assert page.locator("#saga-outcome").get_attribute("data-outcome") == "compensated"
        assert page.locator("#compensations").inner_text() == (
            "CompensateChargePayment, CompensateReserveInventory"
        )
        # the status of a compensated saga is not a green SUCCEEDED: the outcome carries the colour
        status_bg = page.eval_on_selector(
            "#execution-status .status", "b => getComputedStyle(b).backgroundColor"
        )
        assert status_bg != COLOURS["succeeded"]
        legend = page.locator("#legend").inner_text()
        for word in ("succeeded", "failed", "compensated", "running", "not reached"):
            assert word in legend

        # the events table sits beside the graph and carries the failure under its event
        failed_row = page.locator('#events tr.event[data-state="CreateShipment"][data-event-type$="Failed"]')
        assert failed_row.count() >= 1
        event_id = failed_row.first.get_attribute("data-event-id")
        assert "ShipmentFailed" in page.locator(f'#events tr.io[data-io-for="{event_id}"]').inner_text()
        graph_box = page.locator("#graph").bounding_box()
        events_box = page.locator("#events").bounding_box()
        assert events_box["x"] > graph_box["x"] + graph_box["width"] - 1

        page.screenshot(path=str(tmp_path / "execution.png"))  # the 1400x900 viewport, as loaded
        page.eval_on_selector_all("#events details", "ds => ds.forEach(d => { d.open = true; })")
        _assert_fits(page)  # with every input/output open
        assert (tmp_path / "execution.png").stat().st_size > 10_000

        # clicking a node filters the events to that state
        page.click('#graph g[data-state="CompensateReserveInventory"]')
        states = page.locator("#events tbody tr").evaluate_all("rows => rows.map(r => r.dataset.state)")
        assert states and set(states) == {"CompensateReserveInventory"}


def test_index_shows_and_filters_saga_outcomes(
    order_sagas: dict[str, Any], browser_page: Any, tmp_path: Path
) -> None:
    with serve_inspector(sfn_client=order_sagas["sfn"]) as server:
        page = browser_page
        page.goto(server.url + "/")
        page.wait_for_selector("body[data-loaded=true]", timeout=15_000)
        assert "OrderSaga" in page.locator("#state-machines").inner_text()
        rows = page.locator("#executions tr[data-execution]")
        seen = {
            rows.nth(i).get_attribute("data-execution"): (
                rows.nth(i).get_attribute("data-status"),
                rows.nth(i).get_attribute("data-outcome"),
            )
            for i in range(rows.count())
        }
        sagas = {arn: v for arn, v in seen.items() if ":execution:OrderSaga:" in arn}
        # the Express projection has no saga outcome: it compensates nothing
        assert {v for arn, v in seen.items() if arn not in sagas} == {("SUCCEEDED", "")}
        assert sagas == {
            order_sagas["compensated"]: ("SUCCEEDED", "compensated"),
            order_sagas["compensation-failed"]: ("FAILED", "compensation_failed"),
            order_sagas["first-step-rejected"]: ("SUCCEEDED", "compensated"),
            order_sagas["completed"]: ("SUCCEEDED", "completed"),
        }
        _assert_fits(page)
        page.screenshot(path=str(tmp_path / "index.png"))

        page.select_option("#outcome-filter", "compensated")
        page.wait_for_url("**/?outcome=compensated")
        page.wait_for_selector("body[data-loaded=true]", timeout=15_000)
        shown = page.locator("#executions tr[data-execution]").evaluate_all(
            "rs => rs.map(r => r.dataset.execution)"
        )
        assert sorted(shown) == sorted([order_sagas["compensated"], order_sagas["first-step-rejected"]])

        page.locator(f'#executions tr[data-execution="{order_sagas["first-step-rejected"]}"] a').click()
        page.wait_for_selector("#graph g[data-state]", timeout=15_000)
        assert (
            page.locator('#graph g[data-state="ReserveInventory"]').get_attribute("data-outcome") == "failed"
        )
        assert page.locator("#saga-outcome").get_attribute("data-outcome") == "compensated"

        arn = order_sagas["compensated"]
        missing = arn.rsplit(":", 1)[0] + ":nope"
        page.goto(server.execution_url(missing))
        page.wait_for_selector("#error:not([hidden])", timeout=15_000)
        assert f"execution not found: {missing}" in page.locator("#error").inner_text()
        with urlopen(server.url + "/static/inspector.js") as response:
            assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")


def test_compensation_failed_page_names_the_failed_state(
    order_sagas: dict[str, Any], browser_page: Any, tmp_path: Path
) -> None:
    with serve_inspector(sfn_client=order_sagas["sfn"]) as server:
        page = browser_page
        page.goto(server.execution_url(order_sagas["compensation-failed"]))
        page.wait_for_selector("body[data-loaded=true]", timeout=15_000)
        assert page.locator("#saga-outcome").get_attribute("data-outcome") == "compensation_failed"
        failure = page.locator("#failure")
        text = failure.inner_text()
        prefix = "CompensationFailed: CompensateChargePayment failed with Rejected.RefundFailed: "
        assert text.startswith(prefix)
        assert text.endswith(": refund failed (simulated)") and "{" not in text  # no raw JSON
        failed = failure.locator(".failed-state")
        assert (failed.get_attribute("data-state"), failed.get_attribute("data-error")) == (
            "CompensateChargePayment",
            "Rejected.RefundFailed",
        )
        outcome = {
            name: page.get_attribute(f'#graph g[data-state="{name}"]', "data-outcome")
            for name in ("CompensateChargePayment", "CompensationFailed", "CompensateReserveInventory")
        }
        assert outcome == {
            "CompensateChargePayment": "failed",
            "CompensationFailed": "failed",
            "CompensateReserveInventory": "not_reached",
        }
        page.screenshot(path=str(tmp_path / "compensation-failed.png"))
        page.eval_on_selector_all("#events details", "ds => ds.forEach(d => { d.open = true; })")
        _assert_fits(page)  # with every input/output open, as above
