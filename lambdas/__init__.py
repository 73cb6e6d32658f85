"""Lambda functions of saga-outbox and the reference order domain.

* :mod:`lambdas.handlers` — thin entry points (``command_api``, ``dispatcher``, ``steps``, ``relay``),
  each with ``make_handler(runtime, ...)`` and a lazily built module-level ``handler``.
* :mod:`lambdas.runtime` — configuration + injected clients (``configure``, ``Runtime``).
* :mod:`lambdas.config` — ``RuntimeConfig`` (environment variables, validated once).
* :mod:`lambdas.orders` — order tables, ``place_order``, saga steps and their registry.
* :mod:`lambdas.dispatching`, :mod:`lambdas.tasks` — routing to Step Functions; the step-task contract.
* :mod:`lambdas.exceptions` — every error derives from ``LambdasError``.
"""
