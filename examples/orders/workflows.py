"""The order saga and the order projection; :mod:`examples.orders.app` registers them with
their actions."""

from __future__ import annotations

from saga_outbox import TRANSIENT_ERRORS, RetryPolicy, Step, Workflow, WorkflowKind

# Local runs execute retries for real (moto sleeps IntervalSeconds), so keep waits short.
TRANSIENT = RetryPolicy(errors=TRANSIENT_ERRORS, interval_seconds=1, backoff_rate=2.0, max_attempts=3)
UNDO = RetryPolicy(errors=TRANSIENT_ERRORS, interval_seconds=1, backoff_rate=2.0, max_attempts=3)
PROJECTION = RetryPolicy(errors=TRANSIENT_ERRORS, interval_seconds=1, backoff_rate=2.0, max_attempts=2)

ORDER_SAGA = Workflow(
    name="OrderSaga",
    kind=WorkflowKind.STANDARD,
    steps=[
        Step(
            name="ReserveInventory",
            action="reserve_inventory",
            compensation="release_inventory",
            retry=TRANSIENT,
            timeout_seconds=30,
            idempotent=True,
        ),
        Step(
            name="ChargePayment",
            action="charge_payment",
            compensation="refund_payment",
            retry=TRANSIENT,
            timeout_seconds=30,
            idempotent=True,
        ),
        Step(
            name="CreateShipment",
            action="create_shipment",
            compensation="cancel_shipment",
            retry=TRANSIENT,
            timeout_seconds=30,
            idempotent=True,
        ),
    ],
    # The pivot (first without a compensation): once the order is confirmed, nothing is undone.
    on_success=Step(name="ConfirmOrder", action="confirm_order", retry=TRANSIENT, idempotent=True),
    on_compensated=Step(name="CancelOrder", action="cancel_order", retry=UNDO, idempotent=True),
)
"""Reserve stock, charge, book the shipment, confirm; on failure cancel the shipment, refund and
release in reverse order, then cancel the order.

Every step is compensable and ``ConfirmOrder`` is the saga's pivot, so the classic shape holds
(a booked shipment is cancellable until the order is confirmed, like a carrier label before
pickup). A step failing with a declared rejection (``PaymentDeclined``) is not undone itself;
one failing with an unknown outcome (timeout, crash, retries exhausted) is. ``confirm_order``
rejected (``InvalidOrderTransition``) undoes everything; its outcome unknown ends in
``CompensationFailed`` (it may have confirmed). ``confirm_order`` emits OrderConfirmed,
``cancel_order`` emits OrderCancelled (through the outbox)."""

ORDER_PROJECTION = Workflow(
    name="OrderProjection",
    kind=WorkflowKind.EXPRESS,
    steps=[
        Step(
            name="ProjectOrder", action="project_order", retry=PROJECTION, timeout_seconds=10, idempotent=True
        ),
        Step(
            name="RecordNotification",
            action="record_notification",
            retry=PROJECTION,
            timeout_seconds=10,
            idempotent=True,
        ),
    ],
)
"""Keep the order read model and the notification log up to date for every order event."""
