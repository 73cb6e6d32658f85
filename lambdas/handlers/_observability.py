"""Powertools Logger, Tracer and Metrics for one function (created at cold start, not import)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

NAMESPACE = "SagaOutbox"


def observability(service: str) -> tuple[Logger, Tracer, Metrics]:
    """Logger, Tracer and Metrics for ``service``. The Tracer disables itself outside Lambda
    (local runtime, tests); Metrics print EMF to stdout when the handler returns."""
    return Logger(service=service), Tracer(service=service), Metrics(namespace=NAMESPACE, service=service)
