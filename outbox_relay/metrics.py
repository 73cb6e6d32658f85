"""Metrics sinks: the relay reports through one small interface; pick or write an adapter."""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any, Protocol

__all__ = ["InMemoryMetrics", "MetricsSink", "NullMetrics", "PowertoolsMetricsSink"]

# Names the relay emits (see README "Operations").
PUBLISHED = "Published"
FAILED = "PublishFailed"
THROTTLED = "Throttled"
DEAD = "DeadLettered"
LATE_RESENDS = "LateResends"
LEASE_LOST = "LeaseLost"
OLDEST_PENDING_AGE = "OldestPendingAgeSeconds"
BATCH_LATENCY = "BatchLatencyMs"
#: a whole publish request failed (outage, 5xx, throttling, credentials, permissions)
REQUEST_FAILED = "PublishRequestFailed"
#: a claim or mark failed on a database error (the pass is retried after a backoff)
DATABASE_ERRORS = "DatabaseErrors"
#: a pipeline died on an unexpected error and was restarted by the supervisor
PIPELINE_RESTARTS = "PipelineRestarts"
LISTEN_LOST = "ListenConnectionLost"


class MetricsSink(Protocol):
    def count(self, name: str, value: float = 1) -> None: ...
    def gauge(self, name: str, value: float) -> None: ...
    def timing(self, name: str, milliseconds: float) -> None: ...


class NullMetrics:
    def count(self, name: str, value: float = 1) -> None:
        return None

    def gauge(self, name: str, value: float) -> None:
        return None

    def timing(self, name: str, milliseconds: float) -> None:
        return None


class InMemoryMetrics:
    """Thread-safe counters, last gauges and timing samples: for tests, the demo and the CLI."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counters: dict[str, float] = defaultdict(float)
        self.gauges: dict[str, float] = {}
        self.timings: dict[str, list[float]] = defaultdict(list)

    def count(self, name: str, value: float = 1) -> None:
        with self._lock:
            self.counters[name] += value

    def gauge(self, name: str, value: float) -> None:
        with self._lock:
            self.gauges[name] = value

    def timing(self, name: str, milliseconds: float) -> None:
        with self._lock:
            samples = self.timings[name]
            samples.append(milliseconds)
            if len(samples) > 10_000:  # bounded: a long-running relay must not grow without end
                del samples[: len(samples) - 10_000]


class PowertoolsMetricsSink:
    """Adapter to ``aws_lambda_powertools.Metrics`` (EMF), for the scheduled relay Lambda."""

    def __init__(self, metrics: Any) -> None:
        self._metrics = metrics
        self._lock = threading.Lock()

    def count(self, name: str, value: float = 1) -> None:
        with self._lock:
            self._metrics.add_metric(name=name, unit="Count", value=value)

    def gauge(self, name: str, value: float) -> None:
        with self._lock:
            self._metrics.add_metric(name=name, unit="Seconds", value=value)

    def timing(self, name: str, milliseconds: float) -> None:
        with self._lock:
            self._metrics.add_metric(name=name, unit="Milliseconds", value=milliseconds)
