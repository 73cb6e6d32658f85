"""What a relay is told: its validated options, and what a bounded drain reports."""

from __future__ import annotations

import os
import re
import socket
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from .exceptions import ConfigurationError
from .schema import DEFAULT_DESTINATION, DEFAULT_SCHEMA, check_schema

_DESTINATION = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")

__all__ = ["DrainResult", "RelayOptions"]


@dataclass(frozen=True, kw_only=True)
class RelayOptions:
    """How a relay claims, sends and retries. Every field is validated on construction."""

    schema: str = DEFAULT_SCHEMA
    #: rows claimed per database round trip
    claim_size: int = 200
    #: entries per SendMessageBatch (SQS allows at most 10)
    batch_size: int = 10
    #: consecutive rows of one aggregate per claim. 1 (default) sends a group one message at a
    #: time, which keeps order even when SQS rejects one entry of a batch and accepts a later one
    #: of the same group; up to 10 trades that guarantee for single-aggregate throughput.
    rows_per_group: int = 1
    #: SendMessageBatch requests in flight at once (shared by the pipelines). 16 keeps one
    #: process busy at ~20 ms per call; a queue in normal throughput mode is paced anyway
    concurrency: int = 16
    #: claim→publish→mark passes running at once, each on its own groups (their claims take
    #: turns; a database connection is held only while claiming or marking). 8 keeps one idle
    #: to take a new commit at once: NOTIFY p99 42 ms against 86 ms with 4 at 1,000 commits/s
    pipelines: int = 8
    #: how long a claim is ours; a relay that stalls longer is fenced off
    lease_seconds: float = 30.0
    #: entries SQS rejected for their own content before a row is dead; request-level
    #: failures (outage, throttling, 5xx, credentials, permissions) never count
    max_attempts: int = 8
    #: backoff of a row after its entry failed, and of the whole relay after a request-level
    #: or database failure: exponential from base to max, with jitter
    backoff_base_seconds: float = 0.5
    backoff_max_seconds: float = 60.0
    #: idle wait between polls when no NOTIFY arrives
    poll_interval_seconds: float = 1.0
    #: wake on LISTEN/NOTIFY (the writer notifies on commit)
    listen: bool = True
    #: SQS FIFO deduplicates a MessageDeduplicationId for 5 minutes only
    dedup_window: timedelta = timedelta(minutes=5)
    #: identifies this relay in leases and logs
    relay_id: str = field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    )
    #: how often the oldest-pending-age gauge is refreshed
    lag_interval_seconds: float = 5.0
    #: publish calls per second of this relay. None: just under the quota the publisher reads
    #: from its destination at check() (an SQS FIFO queue in normal throughput mode: 300 per
    #: action), unpaced where there is none (high-throughput mode). The quota is shared by every
    #: relay of the queue: with N relays set it to about 295 / N. A throttled call costs a
    #: 0.5-2 s pause of the whole relay, so staying under the quota is worth far more.
    max_calls_per_second: float | None = None
    #: server-side prepared statements for the claim and the mark, from their first run. Set
    #: False when the engine goes through RDS Proxy (a prepared statement pins the session to
    #: one backend); keep True on the cluster endpoint, where it saves the planning per pass.
    prepared_statements: bool = True
    #: the destination whose rows this relay claims (docs/destinations.md): its publisher must
    #: send there. One relay per destination, or a ``RoutedRelay`` running one for each
    destination: str = DEFAULT_DESTINATION

    def __post_init__(self) -> None:
        check_schema(self.schema)
        if not isinstance(self.destination, str) or not _DESTINATION.match(self.destination):
            raise ConfigurationError(
                f"RelayOptions.destination={self.destination!r} is not a destination name "
                "(1-63 lower-case letters, digits, '_' or '-', a letter first)"
            )
        checks: list[tuple[str, Any, bool]] = [
            ("claim_size", self.claim_size, 1 <= self.claim_size <= 10_000),
            ("batch_size", self.batch_size, 1 <= self.batch_size <= 10),
            ("rows_per_group", self.rows_per_group, 1 <= self.rows_per_group <= 10),
            ("concurrency", self.concurrency, 1 <= self.concurrency <= 256),
            ("pipelines", self.pipelines, 1 <= self.pipelines <= 16),
            ("lease_seconds", self.lease_seconds, self.lease_seconds >= 1),
            ("max_attempts", self.max_attempts, self.max_attempts >= 1),
            ("backoff_base_seconds", self.backoff_base_seconds, self.backoff_base_seconds > 0),
            (
                "backoff_max_seconds",
                self.backoff_max_seconds,
                self.backoff_max_seconds >= self.backoff_base_seconds,
            ),
            ("poll_interval_seconds", self.poll_interval_seconds, self.poll_interval_seconds > 0),
            (
                "max_calls_per_second",
                self.max_calls_per_second,
                self.max_calls_per_second is None or self.max_calls_per_second > 0,
            ),
        ]
        for name, value, ok in checks:
            if not ok:
                raise ConfigurationError(f"RelayOptions.{name}={value!r} is out of range")


@dataclass(frozen=True, slots=True)
class DrainResult:
    published: int
    failed: int
    dead: int
    late_resends: int
    remaining: int
    seconds: float
