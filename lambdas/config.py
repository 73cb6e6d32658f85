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
``SAGA_OUTBOX_APP``            the app, ``module:attr`` (steps, dispatcher and reconciler)
``RECONCILE_OLDER_THAN_MINUTES``  the reconciler checks events published at least this long ago
                               (default 15: past the dispatcher's SQS retries)
``RECONCILE_SINCE_HOURS``      and at most this long ago (default 24)
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .exceptions import ConfigurationError

__all__ = ["RuntimeConfig"]

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
    "reconcile_older_than_minutes": "RECONCILE_OLDER_THAN_MINUTES",
    "reconcile_since_hours": "RECONCILE_SINCE_HOURS",
}
_IAM_TRIO = ("database_secret_arn", "database_proxy_endpoint", "database_name")


class RuntimeConfig(BaseModel):
    """Validated settings shared by all handlers (a frozen pydantic model). Each handler checks
    what it needs with :meth:`require` at cold start, so a missing variable fails fast with its
    name; an invalid value raises :class:`ConfigurationError` naming the variable."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    database_url: str | None = None
    database_secret_arn: str | None = None
    database_proxy_endpoint: str | None = None
    database_name: str | None = None
    outbox_schema: str = Field(default="saga_outbox", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    queue_url: str | None = None
    idempotency_table: str | None = None
    state_machine_arns: Mapping[str, str] = Field(default_factory=dict)
    relay_max_seconds: float = Field(default=50.0, gt=0, le=900)
    app: str | None = None
    """``module:attr`` of the user's :class:`~saga_outbox.SagaApp` (loaded at cold start)."""
    reconcile_older_than_minutes: float = Field(default=15.0, ge=0, le=7 * 24 * 60)
    reconcile_since_hours: float = Field(default=24.0, gt=0, le=90 * 24)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigurationError(_explain(exc)) from exc

    @field_validator("state_machine_arns", mode="before")
    @classmethod
    def _arns_from_json(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise ValueError(f"is not valid JSON: {exc}") from exc
        if not isinstance(value, Mapping):
            raise ValueError("must be a JSON object {workflow: arn}")
        for workflow, arn in value.items():
            if not isinstance(workflow, str) or not isinstance(arn, str) or not arn.startswith("arn:"):
                raise ValueError(f"must map workflow names to ARNs; bad entry {workflow!r}: {arn!r}")
        return dict(value)

    @model_validator(mode="after")
    def _iam_trio_together(self) -> RuntimeConfig:
        given = [getattr(self, n) for n in _IAM_TRIO]
        if any(given) and not all(given):
            missing = [_ENV_NAMES[n] for n, v in zip(_IAM_TRIO, given, strict=True) if not v]
            raise ValueError(
                "IAM database authentication needs DATABASE_SECRET_ARN, DATABASE_PROXY_ENDPOINT and "
                f"DATABASE_NAME together; missing: {', '.join(missing)}"
            )
        # read-only view: a handler must not change the routing it was started with
        object.__setattr__(self, "state_machine_arns", MappingProxyType(dict(self.state_machine_arns)))
        return self

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RuntimeConfig:
        """Read and validate the environment (``os.environ`` unless ``environ`` is given);
        unset and blank variables take the defaults."""
        env = os.environ if environ is None else environ
        values = {name: env[var].strip() for name, var in _ENV_NAMES.items() if env.get(var, "").strip()}
        return cls(**values)

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


def _explain(exc: ValidationError) -> str:
    """One line per problem, each naming the environment variable and the value given."""
    lines = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        variable = _ENV_NAMES.get(field, field)
        message = str(error["msg"]).removeprefix("Value error, ")
        if "input" in error and field:
            message += f" (got {error['input']!r})"
        lines.append(f"{variable} {message}" if variable else message)
    return "; ".join(lines)
