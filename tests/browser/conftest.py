"""Headless Chromium (system /usr/bin/chromium via Playwright) and real runs of the orders
example's saga on the local runtime."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM = os.environ.get("SAGA_OUTBOX_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not os.path.exists(CHROMIUM):
        pytest.skip("Chromium not found: apt-get install chromium")
    return CHROMIUM


@pytest.fixture
def browser_page(chromium_path: str) -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            page = context.new_page()
            # Nothing but the local inspector may be fetched (no CDN, no network).
            page.route(
                "**/*",
                lambda route: (
                    route.continue_() if route.request.url.startswith("http://127.0.0.1") else route.abort()
                ),
            )
            yield page
        finally:
            browser.close()


RUNS = {
    "compensated": {"fail_shipping": True},
    "compensation-failed": {"fail_shipping": True, "fail_refund": True},
    "first-step-rejected": {"fail_inventory": True},
    "completed": {},
}


@pytest.fixture(scope="module")
def order_sagas(database_url: str) -> Iterator[dict[str, Any]]:
    """Real runs of the orders example on the local runtime (its compiled OrderSaga, moto's ASL
    interpreter, the example's actions): ``sfn`` and one execution ARN per entry of RUNS."""
    from tests.integration.test_inspect_cli import run_orders

    with run_orders(database_url, RUNS, outbox="page_outbox", orders="page_orders") as (sfn, arns):
        yield {"sfn": sfn, **arns}
