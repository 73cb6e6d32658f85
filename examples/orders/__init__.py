"""The reference order domain, written only on saga-outbox's public API, like any user's app:
tables, the ``place_order`` command, the saga steps and the app object that wires them."""

from .app import create_app
from .commands import CommandResult, place_order, place_order_once
from .schema import OrderTables, migrate_orders, order_tables
from .steps import hook_event_id, simulated_faults

__all__ = [
    "CommandResult",
    "OrderTables",
    "create_app",
    "hook_event_id",
    "migrate_orders",
    "order_tables",
    "place_order",
    "place_order_once",
    "simulated_faults",
]
