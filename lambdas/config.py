"""Runtime configuration of the Lambda functions, validated once into a frozen dataclass.

Nothing here runs at import time: :meth:`RuntimeConfig.from_env` is called lazily on the
first invocation (see :mod:`saga_outbox.lambdas.runtime`), and tests or the local runtime build a
:class:`RuntimeConfig` directly.

Environment variables
---------------------
``DATABASE_URL``               SQLAlchemy/libpq URL (local runs, tests). Or, on AWS, all of:
``DATABASE_SECRET_ARN``        Secrets Manager secret holding ``{"username": ...}`` (the password
                               is never used: connections authenticate with an IAM token)
``DATABASE_PROXY_ENDPOINT``    RDS Proxy endpoint host (``host`` or ``host:port``)
``DATABASE_NAME``              database name
``OUTBOX_SCHEMA``              schema of the outbox table (default ``saga_outbox``)
``QUEUE_URL``                  SQS FIFO queue the relay publishes to (relay only)
``IDEMPOTENCY_TABLE``          DynamoDB table of Powertools Idempotency (steps only)
``STATE_MACHINE_ARNS``         JSON object: workflow name -> state machine ARN (dispatcher only)
``RELAY_MAX_SECONDS``          time budget of one scheduled relay drain (default 50)
``SAGA_OUTBOX_APP``            the app, ``module:attr`` (steps and dispatcher)
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .exceptions import ConfigurationError

__all__ = ["RuntimeConfig"]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

# attribute name -> environment variable, for error messages
_ENV_NAMES = {
    "database_url": "DATABASE_URL",
    "database_secret_arn": "DATABASE_SECRET_ARN",
    "database_proxy_endpoint": "DATABASE_PROXY_ENDPOINT",
    "database_name": "DATABASE_NAME",
    "outbox_schema": "OUTBOX_SCHEMA",
    "queue_url": "QUEUE_URL",
    "idempotency_table": "IDEMPOTENCY_TABLE",
    "state_machine_arns": "STATE_MACHINE_ARNS",
    "relay_max_seconds": "RELAY_MAX_SECONDS",
    "app": "SAGA_OUTBOX_APP",
}


@dataclass(frozen=True, kw_only=True)
class RuntimeConfig:
    """Validated settings shared by all handlers. Each handler checks what it needs with
    :meth:`require` at cold start, so a missing variable fails fast with its name."""

    database_url: str | None = None
    database_secret_arn: str | None = None
    database_proxy_endpoint: str | None = None
    database_name: str | None = None
    outbox_schema: str = "saga_outbox"
    queue_url: str | None = None
    idempotency_table: str | None = None
    state_machine_arns: Mapping[str, str] = field(default_factory=dict)
    relay_max_seconds: float = 50.0
    app: str | None = None
    """``module:attr`` of the user's :class:`~saga_outbox.SagaApp` (loaded at cold start)."""

    def __post_init__(self) -> None:
        for name in ("outbox_schema",):
            value = getattr(self, name)
            if not isinstance(value, str) or not _IDENTIFIER.match(value):
                raise ConfigurationError(
                    f"{_ENV_NAMES[name]} must be a SQL identifier ([A-Za-z_][A-Za-z0-9_]*), got {value!r}"
                )
        if not (0 < self.relay_max_seconds <= 900):
            raise ConfigurationError(
                f"RELAY_MAX_SECONDS must be in (0, 900] seconds, got {self.relay_max_seconds!r}"
            )
        arns = dict(self.state_machine_arns)
        for workflow, arn in arns.items():
            if not isinstance(workflow, str) or not isinstance(arn, str) or not arn.startswith("arn:"):
                raise ConfigurationError(
                    f"STATE_MACHINE_ARNS must map workflow names to ARNs; bad entry {workflow!r}: {arn!r}"
                )
        object.__setattr__(self, "state_machine_arns", MappingProxyType(arns))
        proxy = (self.database_secret_arn, self.database_proxy_endpoint, self.database_name)
        if any(proxy) and not all(proxy):
            missing = [
                _ENV_NAMES[n]
                for n, v in zip(
                    ("database_secret_arn", "database_proxy_endpoint", "database_name"), proxy, strict=True
                )
                if not v
            ]
            raise ConfigurationError(
                "IAM database authentication needs DATABASE_SECRET_ARN, DATABASE_PROXY_ENDPOINT and "
                f"DATABASE_NAME together; missing: {', '.join(missing)}"
            )

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RuntimeConfig:
        """Read and validate the environment (``os.environ`` unless ``environ`` is given)."""
        env = os.environ if environ is None else environ

        def text(name: str) -> str | None:
            value = env.get(_ENV_NAMES[name], "").strip()
            return value or None

        kwargs: dict[str, object] = {
            "database_url": text("database_url"),
            "database_secret_arn": text("database_secret_arn"),
            "database_proxy_endpoint": text("database_proxy_endpoint"),
            "database_name": text("database_name"),
            "queue_url": text("queue_url"),
            "idempotency_table": text("idempotency_table"),
            "app": text("app"),
        }
        for name in ("outbox_schema",):
            value = text(name)
            if value is not None:
                kwargs[name] = value
        raw_arns = text("state_machine_arns")
        if raw_arns is not None:
            try:
                arns = json.loads(raw_arns)
            except ValueError as exc:
                raise ConfigurationError(f"STATE_MACHINE_ARNS is not valid JSON: {exc}") from exc
            if not isinstance(arns, dict):
                raise ConfigurationError("STATE_MACHINE_ARNS must be a JSON object {workflow: arn}")
            kwargs["state_machine_arns"] = arns
        raw_seconds = text("relay_max_seconds")
        if raw_seconds is not None:
            try:
                kwargs["relay_max_seconds"] = float(raw_seconds)
            except ValueError as exc:
                raise ConfigurationError(f"RELAY_MAX_SECONDS must be a number, got {raw_seconds!r}") from exc
        return cls(**kwargs)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ checks
    @property
    def uses_iam_database_auth(self) -> bool:
        return self.database_url is None and self.database_proxy_endpoint is not None

    def require(self, *names: str) -> None:
        """Fail with the environment variable's name unless every setting in ``names`` is set.

        ``"database"`` means DATABASE_URL or the IAM trio."""
        for name in names:
            if name == "database":
                if self.database_url is None and not self.uses_iam_database_auth:
                    raise ConfigurationError(
                        "no database configured: set DATABASE_URL, or DATABASE_SECRET_ARN + "
                        "DATABASE_PROXY_ENDPOINT + DATABASE_NAME"
                    )
                continue
            if name not in _ENV_NAMES:
                raise ValueError(f"unknown setting {name!r}")
            if not getattr(self, name):
                raise ConfigurationError(f"{_ENV_NAMES[name]} is required by this function but is not set")
