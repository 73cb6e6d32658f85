"""The order workflows retry exactly the step handlers' transient errors, and no business error."""

import inspect

from examples.orders.workflows import ORDER_PROJECTION, ORDER_SAGA
from saga_outbox import TRANSIENT_ERRORS
from saga_outbox.lambdas import exceptions as lambda_errors

# raised only by the dispatcher (SQS redelivers it), never by a step
_NOT_FROM_STEPS = {"DispatchFailed"}


def _classes(base: type) -> set[str]:
    return {
        name
        for name, obj in vars(lambda_errors).items()
        if inspect.isclass(obj) and issubclass(obj, base) and obj is not base
    }


def test_retried_names_are_the_transient_exceptions_of_the_steps():
    ours = {n for n in TRANSIENT_ERRORS if "." not in n}  # Lambda.* / States.* are AWS's names
    assert ours == _classes(lambda_errors.TransientError) - _NOT_FROM_STEPS
    for wf in (ORDER_SAGA, ORDER_PROJECTION):
        for step in wf.steps:
            assert set(step.retry.errors) == set(TRANSIENT_ERRORS), step.name


def test_business_failures_are_not_retried():
    from examples.orders import exceptions as order_errors

    business = {
        name
        for name, obj in vars(order_errors).items()
        if inspect.isclass(obj) and issubclass(obj, lambda_errors.BusinessRuleViolation)
    }
    assert {"PaymentDeclined", "ShipmentFailed", "RefundFailed", "InventoryUnavailable"} <= business
    assert not business & set(TRANSIENT_ERRORS)


def test_the_default_retry_policy_retries_only_transient_errors():
    from saga_outbox import RetryPolicy, Step

    assert RetryPolicy().errors == TRANSIENT_ERRORS
    assert Step(name="A", action="a").retry.errors == TRANSIENT_ERRORS
