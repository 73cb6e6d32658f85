"""Powertools Logger, Tracer and Metrics for one function (created at cold start, not import)."""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, Tracer

#: used when POWERTOOLS_METRICS_NAMESPACE is unset (local runs, tests)
NAMESPACE = "SagaOutbox"
NAMESPACE_ENV = "POWERTOOLS_METRICS_NAMESPACE"


def metrics_namespace() -> str:
    """The deployment's namespace (the CDK construct sets ``POWERTOOLS_METRICS_NAMESPACE`` from
    ``metrics_namespace``, and its alarms watch that namespace), else :data:`NAMESPACE`. An
    explicit ``Metrics(namespace=...)`` would override the variable and make custom-namespace
    alarms watch a namespace nothing emits to."""
    return os.environ.get(NAMESPACE_ENV, "").strip() or NAMESPACE


def observability(service: str) -> tuple[Logger, Tracer, Metrics]:
    """Logger, Tracer and Metrics for ``service``. The Tracer disables itself outside Lambda
    (local runtime, tests); Metrics print EMF to stdout when the handler returns."""
    return (
        Logger(service=service),
        Tracer(service=service),
        Metrics(namespace=metrics_namespace(), service=service),
    )
