"""Pieces of the deployment that run outside CDK: the handlers' metrics namespace (it must be
the one the construct's alarms watch) and the Fargate relay image's entry point."""

from __future__ import annotations

from typing import Any

import pytest

from saga_outbox.cdk import relay_entrypoint
from saga_outbox.cdk.concurrency import plan_concurrency
from saga_outbox.cdk.config import DeploymentConfig
from saga_outbox.lambdas.handlers._observability import NAMESPACE, observability


def _namespace(metrics: Any) -> str:
    metrics.add_metric(name="Probe", unit="Count", value=1)
    blob = metrics.serialize_metric_set()
    metrics.clear_metrics()
    return blob["_aws"]["CloudWatchMetrics"][0]["Namespace"]


def test_handler_metrics_follow_powertools_metrics_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Shop/Sagas")
    assert _namespace(observability("relay")[2]) == "Shop/Sagas"
    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE")
    assert _namespace(observability("relay")[2]) == NAMESPACE == "SagaOutbox"


def test_relay_container_url_quotes_the_password_and_requires_tls() -> None:
    url = relay_entrypoint.database_url(
        {
            "DATABASE_USER": "saga_admin",
            "DATABASE_PASSWORD": "p@ss/w:rd",
            "DATABASE_HOST": "cluster.cluster-abc.eu-west-1.rds.amazonaws.com",
            "DATABASE_PORT": "5432",
            "DATABASE_NAME": "saga",
        }
    )
    assert url == (
        "postgresql+psycopg://saga_admin:p%40ss%2Fw%3Ard@cluster.cluster-abc.eu-west-1.rds.amazonaws.com"
        ":5432/saga?sslmode=require"
    )
    with pytest.raises(SystemExit, match="DATABASE_PASSWORD"):
        relay_entrypoint.database_url({"DATABASE_USER": "u", "DATABASE_HOST": "h", "DATABASE_NAME": "d"})


class _FakeCloudWatch:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def put_metric_data(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)


def test_relay_container_metrics_reach_cloudwatch_with_the_relay_dimension() -> None:
    client = _FakeCloudWatch()
    sink = relay_entrypoint.CloudWatchMetrics(client, namespace="Shop/Sagas")
    sink.count("Published", 3)
    sink.count("Published", 2)
    sink.gauge("OldestPendingAgeSeconds", 4.0)
    sink.gauge("OldestPendingAgeSeconds", 1.5)
    assert sink.flush() == 2
    [call] = client.calls
    assert call["Namespace"] == "Shop/Sagas"
    data = {d["MetricName"]: d for d in call["MetricData"]}
    assert data["Published"]["Value"] == 5 and data["Published"]["Unit"] == "Count"
    assert data["OldestPendingAgeSeconds"]["Value"] == 1.5
    assert data["OldestPendingAgeSeconds"]["Dimensions"] == [{"Name": "service", "Value": "relay"}]
    assert sink.flush() == 0  # sent values are not sent twice


def test_concurrency_plan_arithmetic() -> None:
    plan = plan_concurrency(DeploymentConfig())
    # the scheduled reconciler's one invocation holds up to 3 connections too
    assert (plan.relay, plan.reconciler, plan.steps, plan.dispatcher) == (1, 1, 28, 2)
    assert plan_concurrency(DeploymentConfig(reconciler=False)).steps == 29
    big = plan_concurrency(DeploymentConfig(connection_budget=1000, app_connections=100))
    assert (big.steps, big.dispatcher) == ((1000 - 100 - 3 - 3) // 3, 29)
    fargate = plan_concurrency(DeploymentConfig(relay="fargate"))
    assert fargate.relay is None and fargate.steps == 29  # the Fargate relay bypasses the proxy
    with pytest.raises(ValueError, match="steps"):
        plan_concurrency(DeploymentConfig(connection_budget=12, app_connections=10))
    with pytest.raises(ValueError, match="steps_reserved_concurrency"):
        plan_concurrency(DeploymentConfig(steps_reserved_concurrency=50))
