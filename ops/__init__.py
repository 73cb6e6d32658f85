"""Operating a saga-outbox deployment: ``saga-outbox cost`` (a monthly estimate from the
compiled workflows and the relay's batching) and ``saga-outbox reconcile`` (start the Standard
executions whose dispatch was lost; list stuck, CompensationFailed and failed executions)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from saga_outbox._lazy import lazy_exports

if TYPE_CHECKING:
    from saga_outbox.ops._reconcile_findings import ReconcileReport
    from saga_outbox.ops.cost import CostAssumptions, CostEstimate, estimate_cost
    from saga_outbox.ops.prices import PRICES, PriceTable
    from saga_outbox.ops.reconcile import ReconcileError, Reconciler

__all__ = [
    "PRICES",
    "CostAssumptions",
    "CostEstimate",
    "PriceTable",
    "ReconcileError",
    "ReconcileReport",
    "Reconciler",
    "estimate_cost",
]

_LAZY = {
    "CostAssumptions": "saga_outbox.ops.cost",
    "CostEstimate": "saga_outbox.ops.cost",
    "estimate_cost": "saga_outbox.ops.cost",
    "PRICES": "saga_outbox.ops.prices",
    "PriceTable": "saga_outbox.ops.prices",
    "ReconcileError": "saga_outbox.ops.reconcile",
    "ReconcileReport": "saga_outbox.ops._reconcile_findings",
    "Reconciler": "saga_outbox.ops.reconcile",
}

__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)
