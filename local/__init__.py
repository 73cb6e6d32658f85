"""The local runtime: embedded PostgreSQL + moto running the same workflow definitions and
handler code that CDK deploys, for the user's app (``saga-outbox local run|up --app M:A``).

Needs the ``local`` extra (``pip install 'saga-outbox[local]'``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from saga_outbox._lazy import lazy_exports

# Eager, and cheap (moto is imported on first use): the module shares its name with the
# function, and a lazy export would lose to the submodule attribute once it is imported.
from saga_outbox.local.lambda_bridge import LocalLambdaContext, bridge_lambda, lambda_bridge

if TYPE_CHECKING:
    from saga_outbox._console import Console, progress_on
    from saga_outbox._tables import format_pairs
    from saga_outbox.local.run import ExecutionReport, RunReport, run_event, run_in
    from saga_outbox.local.runtime import LocalOptions, LocalRuntime

__all__ = [
    "Console",
    "ExecutionReport",
    "LocalLambdaContext",
    "LocalOptions",
    "LocalRuntime",
    "RunReport",
    "bridge_lambda",
    "format_pairs",
    "lambda_bridge",
    "progress_on",
    "run_event",
    "run_in",
]

_LAZY = {
    "Console": "saga_outbox._console",
    "progress_on": "saga_outbox._console",
    "ExecutionReport": "saga_outbox.local.run",
    "RunReport": "saga_outbox.local.run",
    "run_event": "saga_outbox.local.run",
    "run_in": "saga_outbox.local.run",
    "LocalOptions": "saga_outbox.local.runtime",
    "format_pairs": "saga_outbox._tables",
    "LocalRuntime": "saga_outbox.local.runtime",
}

__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)
