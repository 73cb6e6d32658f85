"""Operating a saga-outbox deployment: ``saga-outbox cost`` (a monthly estimate from the
compiled workflows and the relay's batching)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from saga_outbox._lazy import lazy_exports

if TYPE_CHECKING:
    from saga_outbox.ops.cost import CostAssumptions, CostEstimate, estimate_cost
    from saga_outbox.ops.prices import PRICES, PriceTable

__all__ = ["PRICES", "CostAssumptions", "CostEstimate", "PriceTable", "estimate_cost"]

_LAZY = {
    "CostAssumptions": "saga_outbox.ops.cost",
    "CostEstimate": "saga_outbox.ops.cost",
    "estimate_cost": "saga_outbox.ops.cost",
    "PRICES": "saga_outbox.ops.prices",
    "PriceTable": "saga_outbox.ops.prices",
}

__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)
