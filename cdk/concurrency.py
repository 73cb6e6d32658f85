"""Reserved concurrency sized against the database connection budget.

A burst of sagas must not exhaust RDS Proxy: every concurrent steps invocation holds up to
:data:`CONNECTIONS_PER_ENVIRONMENT` connections (``saga_outbox.lambdas.runtime``: a pool of 1
plus an overflow of 2), so the functions that talk to the database get reserved concurrency
that fits in ``connection_budget``:

    relay_connections = relay_reserved_concurrency * 3        (relay="lambda"; the Fargate relay
                                                               connects to the cluster, not the proxy)
    reconciler        = 1 * 3                                  (reconciler=True: reserved concurrency 1)
    steps             = (connection_budget - app_connections - relay_connections - reconciler) // 3
    dispatcher        = max(2, steps // 10)

The dispatcher never opens a database connection, but each of its invocations starts up to 10
executions (one SQS batch) whose first steps run at once: ``steps // 10`` concurrent dispatchers
keep a burst's first steps within the steps' reservation. The same number caps the SQS event
source (``MaximumConcurrency``, at least 2), so Lambda stops polling instead of invoking a
throttled dispatcher, whose messages would come back and count towards ``maxReceiveCount``.
A throttled steps invocation is retried by Step Functions (``Lambda.TooManyRequestsException``
is in the compiler's transient Retry list), so a burst queues instead of failing.

With the defaults (budget 100, app 10, relay 1, reconciler on): relay 3, reconciler 3, steps
(100 - 10 - 3 - 3) // 3 = 28, dispatcher 2. Both reservations can be set explicitly instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from saga_outbox.cdk.config import DeploymentConfig

__all__ = ["CONNECTIONS_PER_ENVIRONMENT", "ConcurrencyPlan", "plan_concurrency"]

#: pool_size + max_overflow of the handlers' engine (saga_outbox.lambdas.runtime)
CONNECTIONS_PER_ENVIRONMENT = 3
#: the SQS event source's MaximumConcurrency may not be lower
MIN_EVENT_SOURCE_CONCURRENCY = 2
#: executions one dispatcher invocation can start (the SQS batch size)
DISPATCHER_BATCH = 10
#: the scheduled reconciler never needs two passes at once
RECONCILER_CONCURRENCY = 1


@dataclass(frozen=True)
class ConcurrencyPlan:
    relay: int | None
    """reserved concurrency of the relay function (None: unreserved or no relay function)"""
    steps: int
    dispatcher: int
    relay_connections: int
    reconciler: int | None = None
    """reserved concurrency of the scheduled reconciler (None: reconciler=False)"""


def plan_concurrency(config: DeploymentConfig) -> ConcurrencyPlan:
    """The reservations for ``config`` (see the module docstring); raises ``ValueError`` when
    the budget cannot hold one steps invocation."""
    relay = (config.relay_reserved_concurrency or None) if config.relay == "lambda" else None
    relay_connections = (relay or 0) * CONNECTIONS_PER_ENVIRONMENT
    reconciler = RECONCILER_CONCURRENCY if config.reconciler else None
    reconciler_connections = (reconciler or 0) * CONNECTIONS_PER_ENVIRONMENT
    available = config.connection_budget - config.app_connections - relay_connections - reconciler_connections
    steps = config.steps_reserved_concurrency or available // CONNECTIONS_PER_ENVIRONMENT
    if steps < 1:
        raise ValueError(
            f"connection_budget={config.connection_budget} leaves {available} connection(s) for the "
            f"steps function after app_connections={config.app_connections}, the relay's "
            f"{relay_connections} and the reconciler's {reconciler_connections}; each steps "
            f"invocation may hold {CONNECTIONS_PER_ENVIRONMENT}"
        )
    if config.steps_reserved_concurrency and steps * CONNECTIONS_PER_ENVIRONMENT > max(available, 0):
        raise ValueError(
            f"steps_reserved_concurrency={steps} may hold {steps * CONNECTIONS_PER_ENVIRONMENT} "
            f"connections, more than the {available} left in connection_budget"
        )
    dispatcher = config.dispatcher_reserved_concurrency or max(
        MIN_EVENT_SOURCE_CONCURRENCY, steps // DISPATCHER_BATCH
    )
    if dispatcher < MIN_EVENT_SOURCE_CONCURRENCY:
        raise ValueError(
            f"dispatcher_reserved_concurrency must be >= {MIN_EVENT_SOURCE_CONCURRENCY} "
            "(the SQS event source's minimum MaximumConcurrency)"
        )
    return ConcurrencyPlan(
        relay=relay,
        steps=steps,
        dispatcher=dispatcher,
        relay_connections=relay_connections,
        reconciler=reconciler,
    )
