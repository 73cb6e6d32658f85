"""The order domain's business failures: final outcomes (the saga compensates, no retry)."""

from __future__ import annotations

from saga_outbox import BusinessRuleViolation

__all__ = [
    "IdempotencyConflict",
    "InvalidOrderTransition",
    "InvalidRequest",
    "InventoryUnavailable",
    "MalformedOrderEvent",
    "PaymentDeclined",
    "RefundFailed",
    "ShipmentFailed",
]


class InvalidOrderTransition(BusinessRuleViolation):
    """An order cannot move to the requested status (e.g. confirming a cancelled order)."""


class InventoryUnavailable(BusinessRuleViolation):
    """Reserving stock failed."""


class PaymentDeclined(BusinessRuleViolation):
    """Charging the customer failed."""


class ShipmentFailed(BusinessRuleViolation):
    """Creating the shipment failed."""


class RefundFailed(BusinessRuleViolation):
    """A refund (compensation) failed: the saga ends in ``CompensationFailed`` and alarms."""


class MalformedOrderEvent(BusinessRuleViolation):
    """An order event lacks what the step needs (``order_id``, items): nothing happened."""


class InvalidRequest(ValueError):
    """A command failed validation; ``field`` names the offending input when known."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class IdempotencyConflict(Exception):
    """An ``Idempotency-Key`` was reused with a different request body."""
