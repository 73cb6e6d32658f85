"""The reference order domain: tables, the ``place_order`` command and the saga steps."""

from .commands import CommandResult, place_order, place_order_once
from .schema import OrderTables, migrate_orders, order_tables
from .steps import ORDER_PROJECTION, ORDER_SAGA, hook_event_id, order_registry, simulated_faults

__all__ = [
    "ORDER_PROJECTION",
    "ORDER_SAGA",
    "CommandResult",
    "OrderTables",
    "hook_event_id",
    "migrate_orders",
    "order_registry",
    "order_tables",
    "place_order",
    "place_order_once",
    "simulated_faults",
]
