"""Lambda functions of saga-outbox and the reference order domain.

* :mod:`saga_outbox.lambdas.handlers` — thin entry points (``command_api``, ``dispatcher``,
  ``steps``, ``relay``),
  each with ``make_handler(runtime, ...)`` and a lazily built module-level ``handler``.
* :mod:`saga_outbox.lambdas.runtime` — configuration + injected clients (``configure``, ``Runtime``).
* :mod:`saga_outbox.lambdas.config` — ``RuntimeConfig`` (environment variables, validated once).
* :mod:`examples.orders` — order tables, ``place_order``, saga steps and their registry.
* :mod:`saga_outbox.lambdas.dispatching`, :mod:`saga_outbox.lambdas.tasks` — routing to Step
  Functions; the step-task contract.
* :mod:`saga_outbox.lambdas.exceptions` — every error derives from ``LambdasError``.
"""
