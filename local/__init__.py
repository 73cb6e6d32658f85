"""The local runtime: embedded PostgreSQL + moto running the same workflow definitions and
handler code that CDK deploys, for the user's app (``saga-outbox local run|up --app M:A``).

Needs the ``local`` extra (``pip install 'saga-outbox[local]'``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from saga_outbox._lazy import lazy_exports

if TYPE_CHECKING:
    from saga_outbox.local.lambda_bridge import LocalLambdaContext, bridge_lambda, lambda_bridge
    from saga_outbox.local.run import ExecutionReport, RunReport, run_event, run_in
    from saga_outbox.local.runtime import LocalOptions, LocalRuntime

__all__ = [
    "ExecutionReport",
    "LocalLambdaContext",
    "LocalOptions",
    "LocalRuntime",
    "RunReport",
    "bridge_lambda",
    "lambda_bridge",
    "run_event",
    "run_in",
]

_LAZY = {
    "ExecutionReport": "saga_outbox.local.run",
    "RunReport": "saga_outbox.local.run",
    "run_event": "saga_outbox.local.run",
    "run_in": "saga_outbox.local.run",
    "LocalOptions": "saga_outbox.local.runtime",
    "LocalRuntime": "saga_outbox.local.runtime",
    "LocalLambdaContext": "saga_outbox.local.lambda_bridge",
    "bridge_lambda": "saga_outbox.local.lambda_bridge",
    "lambda_bridge": "saga_outbox.local.lambda_bridge",
}

__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)
