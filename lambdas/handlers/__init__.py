"""Thin Lambda entry points. Each module has:

* ``make_handler(runtime, **overrides)``: builds the handler from a
  :class:`saga_outbox.lambdas.runtime.Runtime`
  (validates the settings it needs at once: cold start), and
* ``handler``: the Lambda entry point, built lazily from :func:`saga_outbox.lambdas.runtime.get_runtime` on
  the first invocation (environment variables are read then, never at import).

Modules: ``dispatcher``, ``steps``, ``relay``, ``reconciler``, ``stream`` (the DynamoDB outbox's
stream consumer).
"""
