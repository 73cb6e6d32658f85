"""The order workflows retry exactly the errors the step handlers call transient."""

from lambdas.exceptions import RETRYABLE_ERROR_NAMES
from workflows.orders import ORDER_PROJECTION, ORDER_SAGA, TRANSIENT_ERRORS


def test_retried_errors_match_the_handlers_transient_errors():
    assert set(TRANSIENT_ERRORS) == set(RETRYABLE_ERROR_NAMES)
    for wf in (ORDER_SAGA, ORDER_PROJECTION):
        for step in wf.steps:
            assert set(step.retry.errors) == set(TRANSIENT_ERRORS), step.name


def test_business_failures_are_not_retried():
    assert not {"PaymentDeclined", "ShipmentFailed", "RefundFailed", "InventoryUnavailable"} & set(
        TRANSIENT_ERRORS
    )
