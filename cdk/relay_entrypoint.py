"""Entry point of the Fargate relay image (copied into it as ``relay_entrypoint.py``).

It does what ``saga-outbox relay`` does (a long-running :class:`outbox_relay.Relay` with
LISTEN/NOTIFY, stopped by SIGTERM) plus two things a container needs and the CLI has no flag for:

* the database URL is built from the parts ECS injects (``DATABASE_USER``/``DATABASE_PASSWORD``
  from the secret, ``DATABASE_HOST`` = the **cluster** endpoint, never RDS Proxy: LISTEN and
  psycopg's auto-prepared statements pin proxy sessions and a LISTEN through the proxy can miss
  notifications), URL-quoted by SQLAlchemy so any password works;
* the relay's metrics go to CloudWatch (``PutMetricData`` once a minute), because the alarm and
  the service's scaling policy watch ``<namespace>/OldestPendingAgeSeconds`` (``service=relay``)
  and nothing else would publish it outside Lambda.

Imports only what the image installs (outbox_relay, SQLAlchemy, psycopg, boto3): never aws_cdk.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("saga_outbox.relay_service")

#: the "service" dimension the alarms and the scaling policy select (as Powertools sets it)
SERVICE = "relay"
FLUSH_SECONDS = 60.0
_UNITS = {"count": "Count", "gauge": "Seconds", "timing": "Milliseconds"}


def database_url(env: Mapping[str, str]) -> str:
    """``postgresql+psycopg://user:password@host:port/db?sslmode=require`` from the task's env."""
    import sqlalchemy as sa

    missing = [
        k for k in ("DATABASE_USER", "DATABASE_PASSWORD", "DATABASE_HOST", "DATABASE_NAME") if not env.get(k)
    ]
    if missing:
        raise SystemExit(f"relay container: missing environment {', '.join(missing)}")
    url = sa.URL.create(
        "postgresql+psycopg",
        username=env["DATABASE_USER"],
        password=env["DATABASE_PASSWORD"],
        host=env["DATABASE_HOST"],
        port=int(env.get("DATABASE_PORT") or 5432),
        database=env["DATABASE_NAME"],
        query={"sslmode": "require"},
    )
    return url.render_as_string(hide_password=False)


class CloudWatchMetrics:
    """A :class:`outbox_relay.metrics.MetricsSink` that sums counters, keeps the last gauge and
    the timing maximum, and sends them with one ``PutMetricData`` call per :meth:`flush`."""

    def __init__(self, client: Any, *, namespace: str) -> None:
        self._client = client
        self._namespace = namespace
        self._lock = threading.Lock()
        self._values: dict[tuple[str, str], float] = {}

    def count(self, name: str, value: float = 1) -> None:
        with self._lock:
            self._values[(name, "count")] = self._values.get((name, "count"), 0.0) + value

    def gauge(self, name: str, value: float) -> None:
        with self._lock:
            self._values[(name, "gauge")] = float(value)

    def timing(self, name: str, milliseconds: float) -> None:
        with self._lock:
            key = (name, "timing")
            self._values[key] = max(self._values.get(key, 0.0), milliseconds)

    def flush(self) -> int:
        with self._lock:
            values, self._values = self._values, {}
        data = [
            {
                "MetricName": name,
                "Dimensions": [{"Name": "service", "Value": SERVICE}],
                "Unit": _UNITS[kind],
                "Value": value,
            }
            for (name, kind), value in sorted(values.items())
        ]
        for start in range(0, len(data), 1000):  # PutMetricData takes at most 1000 values
            try:
                self._client.put_metric_data(Namespace=self._namespace, MetricData=data[start : start + 1000])
            except Exception as exc:  # metrics must never stop the relay
                log.warning("PutMetricData failed: %s", exc)
        return len(data)


def _flush_every(metrics: CloudWatchMetrics, stop: threading.Event) -> None:
    while not stop.wait(FLUSH_SECONDS):
        metrics.flush()


def main(env: Mapping[str, str] | None = None) -> int:
    import boto3

    from outbox_relay import Relay, RelayOptions, SqsFifoPublisher

    env = os.environ if env is None else env
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    queue_url = env.get("QUEUE_URL")
    if not queue_url:
        raise SystemExit("relay container: missing environment QUEUE_URL")
    metrics = CloudWatchMetrics(
        boto3.client("cloudwatch"), namespace=env.get("POWERTOOLS_METRICS_NAMESPACE") or "SagaOutbox"
    )
    options = RelayOptions(schema=env.get("OUTBOX_SCHEMA") or "saga_outbox", listen=True)
    relay: Any
    if env.get("OUTBOX_DESTINATIONS"):  # the app's other destinations (saga_outbox.cdk.destinations)
        from outbox_relay import RoutedRelay
        from outbox_relay.routed import publishers_from_spec

        publishers = {
            "sqs": SqsFifoPublisher(queue_url=queue_url),
            **publishers_from_spec(env["OUTBOX_DESTINATIONS"]),
        }
        relay = RoutedRelay(engine=database_url(env), publishers=publishers, options=options, metrics=metrics)
    else:
        relay = Relay(
            engine=database_url(env),
            publisher=SqsFifoPublisher(queue_url=queue_url),
            options=options,
            metrics=metrics,
        )
    stop = threading.Event()
    flusher = threading.Thread(target=_flush_every, args=(metrics, stop), name="metrics", daemon=True)
    flusher.start()
    try:
        relay.run_process()  # until SIGTERM (ECS stops tasks with SIGTERM, then SIGKILL)
    finally:
        stop.set()
        metrics.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
