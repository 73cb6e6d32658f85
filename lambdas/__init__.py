"""The generic Lambda handlers; each loads the user's app (``SAGA_OUTBOX_APP``) at cold start.

* :mod:`saga_outbox.lambdas.handlers` — thin entry points (``dispatcher``, ``steps``, ``relay``),
  each with ``make_handler(runtime, ...)`` and a lazily built module-level ``handler``.
* :mod:`saga_outbox.lambdas.runtime` — configuration + injected clients and app (``configure``,
  ``Runtime``, ``get_runtime``); a user's own function (a command API, say) takes its engine
  from ``get_runtime().engine`` as ours do.
* :mod:`saga_outbox.lambdas.config` — ``RuntimeConfig`` (environment variables, validated once).
* :mod:`saga_outbox.lambdas.dispatching`, :mod:`saga_outbox.lambdas.tasks` — routing to Step
  Functions; the step-task contract and :class:`~saga_outbox.StepContext`.
* :mod:`saga_outbox.lambdas.exceptions` — every error derives from ``LambdasError``.
"""
