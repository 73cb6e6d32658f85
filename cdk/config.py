"""Deployment settings, read from CDK context (``-c key=value`` or ``cdk.json``) with defaults.

Every key is optional, so ``cdk synth`` works offline with no arguments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["CONTEXT_DEFAULTS", "RELAY_MODES", "DeploymentConfig"]

RELAY_MODES = ("lambda", "fargate", "none")

_STAGE = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")


@dataclass(frozen=True, kw_only=True)
class DeploymentConfig:
    """Validated deployment settings (one stack per stage)."""

    stage: str = "dev"
    region: str = "eu-west-1"
    account: str | None = None
    aurora_min_acu: float = 0.5
    aurora_max_acu: float = 4.0
    aurora_readers: int = 0
    deletion_protection: bool = True
    backup_retention_days: int = 7
    nat_gateways: int = 0
    relay_schedule_minutes: int = 1
    relay_reserved_concurrency: int = 1
    high_throughput_fifo: bool = False
    max_receive_count: int = 5
    oldest_pending_alarm_seconds: int = 240
    log_retention_days: int = 30
    powertools_layer_version: int = 27
    dependencies_layer_arn: str | None = None
    alarm_email: str | None = None
    outbox_schema: str = "saga_outbox"
    database_name: str = "saga"
    service_name: str = "saga-outbox"
    metrics_namespace: str = "SagaOutbox"
    #: where the relay runs: "lambda" (scheduled drain), "fargate" (LISTEN/NOTIFY service),
    #: "none" (the app embeds it)
    relay: str = "lambda"
    #: Fargate relay: task count bounds and the outbox age (s) that adds a task
    relay_min_tasks: int = 1
    relay_max_tasks: int = 4
    relay_scale_out_age_seconds: int = 30
    #: database connections the functions may hold at once through RDS Proxy (see
    #: saga_outbox.cdk.concurrency for the arithmetic); keep it below the proxy's share of
    #: the cluster's max_connections (max_connections_percent=90)
    connection_budget: int = 100
    #: connections of that budget kept for the app's own functions (e.g. a command API)
    app_connections: int = 10
    #: reserved concurrency of steps / dispatcher; 0 = derived from connection_budget
    steps_reserved_concurrency: int = 0
    dispatcher_reserved_concurrency: int = 0
    #: the scheduled reconciler (saga_outbox.cdk.reconciler): on, every 5 minutes, checking
    #: events published 15 minutes to 24 hours ago
    reconciler: bool = True
    reconcile_every_minutes: int = 5
    reconcile_older_than_minutes: int = 15
    reconcile_since_hours: int = 24

    def __post_init__(self) -> None:
        if not _STAGE.match(self.stage):
            raise ValueError(f"stage must match {_STAGE.pattern}, got {self.stage!r}")
        if not _REGION.match(self.region):
            raise ValueError(f"region looks wrong: {self.region!r}")
        if self.account is not None and not re.fullmatch(r"\d{12}", self.account):
            raise ValueError(f"account must be 12 digits, got {self.account!r}")
        if not (0.0 <= self.aurora_min_acu <= self.aurora_max_acu <= 256):
            raise ValueError("need 0 <= aurora_min_acu <= aurora_max_acu <= 256")
        if not (0 <= self.nat_gateways <= 3):
            raise ValueError("nat_gateways must be 0..3")
        if not (1 <= self.relay_schedule_minutes <= 60):
            raise ValueError("relay_schedule_minutes must be 1..60")
        if not (1 <= self.max_receive_count <= 1000):
            raise ValueError("max_receive_count must be 1..1000")
        if self.relay_reserved_concurrency < 0:
            raise ValueError("relay_reserved_concurrency must be >= 0 (0 = unreserved)")
        if self.relay not in RELAY_MODES:
            raise ValueError(f"relay must be one of {RELAY_MODES}, got {self.relay!r}")
        if not (1 <= self.relay_min_tasks <= self.relay_max_tasks <= 100):
            raise ValueError("need 1 <= relay_min_tasks <= relay_max_tasks <= 100")
        if not (1 <= self.relay_scale_out_age_seconds < self.oldest_pending_alarm_seconds):
            raise ValueError(
                "relay_scale_out_age_seconds must be >= 1 and below oldest_pending_alarm_seconds"
            )
        if not (1 <= self.connection_budget <= 100_000):
            raise ValueError("connection_budget must be 1..100000")
        if not (0 <= self.app_connections < self.connection_budget):
            raise ValueError("app_connections must be >= 0 and below connection_budget")
        for name in ("steps_reserved_concurrency", "dispatcher_reserved_concurrency"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0 = derived from connection_budget)")
        if not (1 <= self.reconcile_every_minutes <= 1440):
            raise ValueError(f"reconcile_every_minutes must be 1..1440, got {self.reconcile_every_minutes!r}")
        if not (0 <= self.reconcile_older_than_minutes < self.reconcile_since_hours * 60 <= 90 * 24 * 60):
            raise ValueError(
                "need 0 <= reconcile_older_than_minutes < reconcile_since_hours * 60 and "
                f"reconcile_since_hours <= 2160 (90 days), got {self.reconcile_older_than_minutes!r} min "
                f"and {self.reconcile_since_hours!r} h"
            )
        if not re.fullmatch(r"[A-Za-z0-9_./#:-]{1,255}", self.metrics_namespace):
            raise ValueError(f"metrics_namespace looks wrong: {self.metrics_namespace!r}")

    @property
    def stack_name(self) -> str:
        return f"SagaOutbox-{self.stage}"

    @property
    def relay_max_seconds(self) -> int:
        """Drain budget of one scheduled run: the schedule period minus a margin, at most 14 min."""
        return min(self.relay_schedule_minutes * 60 - 10, 840)

    @classmethod
    def from_context(cls, try_get_context: Any) -> DeploymentConfig:
        """Build from ``node.try_get_context``; strings from ``-c`` are coerced to the field type."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = try_get_context(f.name)
            if raw is None or raw == "":
                continue
            values[f.name] = _coerce(f.name, raw, CONTEXT_DEFAULTS[f.name])
        return cls(**values)


def _coerce(name: str, raw: Any, default: Any) -> Any:
    if isinstance(default, bool):
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off"}:
            return False
        raise ValueError(f"context {name!r} must be a boolean, got {raw!r}")
    try:
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"context {name!r} must be a number, got {raw!r}") from None
    return str(raw)


CONTEXT_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(DeploymentConfig)}
