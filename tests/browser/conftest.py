"""Headless Chromium (system /usr/bin/chromium via Playwright) and a compensating saga on moto."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

CHROMIUM = os.environ.get("SAGA_OUTBOX_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
MOTO_CONFIG: Any = {"stepfunctions": {"execute_state_machine": True}}
ROLE = "arn:aws:iam::123456789012:role/saga"


def _put(
    table: str, nxt: str, catch: str | None = None, result: str | None = "$.results.x"
) -> dict[str, Any]:
    state: dict[str, Any] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::dynamodb:putItem",
        "Parameters": {"TableName": table, "Item": {"pk": {"S.$": "$$.Execution.Name"}}},
        "ResultPath": result,
        "Next": nxt,
    }
    if catch:
        state["Catch"] = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": catch}]
    return state


SAGA = {
    "StartAt": "ReserveStock",
    "States": {
        "ReserveStock": _put("stock", "ChargePayment", "SagaFailed"),
        "ChargePayment": _put("payments", "ShipOrder", "CompensateReserveStock"),
        "ShipOrder": _put("missing-table", "Done", "CompensateChargePayment"),
        "Done": {"Type": "Succeed"},
        "CompensateChargePayment": _put("payments", "CompensateReserveStock", "CompensationFailed", None),
        "CompensateReserveStock": _put("stock", "SagaCompensated", "CompensationFailed", None),
        "SagaCompensated": {"Type": "Fail", "Error": "SagaCompensated"},
        "SagaFailed": {"Type": "Fail", "Error": "SagaFailed"},
        "CompensationFailed": {"Type": "Fail", "Error": "CompensationFailed"},
    },
}


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
            context = browser.new_context(viewport={"width": 1500, "height": 1000})
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


@pytest.fixture
def compensated_saga(aws_env: None) -> Iterator[dict[str, Any]]:
    """A saga on moto whose third step fails and whose two completed steps are compensated."""
    with mock_aws(config=MOTO_CONFIG):
        ddb = boto3.client("dynamodb")
        for table in ("stock", "payments"):
            ddb.create_table(
                TableName=table,
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        sfn = boto3.client("stepfunctions")
        sm = sfn.create_state_machine(name="OrderSaga", definition=json.dumps(SAGA), roleArn=ROLE)
        arn = sfn.start_execution(stateMachineArn=sm["stateMachineArn"], name="order-42", input="{}")[
            "executionArn"
        ]
        deadline = time.monotonic() + 20
        while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
            assert time.monotonic() < deadline, "execution did not finish"
            time.sleep(0.05)
        yield {"sfn": sfn, "execution_arn": arn, "state_machine_arn": sm["stateMachineArn"]}
