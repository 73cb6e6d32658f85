"""Engine handling and PostgreSQL error classification, in one place."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from .embedded import sqlalchemy_url
from .exceptions import DatabaseUnavailableError, OutboxTableMissingError

UNDEFINED_TABLE = "42P01"
INVALID_SCHEMA = "3F000"
UNIQUE_VIOLATION = "23505"
RETRYABLE = {"40001", "40P01", "57P01", "57P02", "57P03", "08000", "08003", "08006"}


def connect_engine(bind: Any) -> tuple[sa.Engine, bool]:
    """Return (engine, owned): an Engine as given, or a new one from a URL (owned: dispose it)."""
    if isinstance(bind, sa.Engine):
        return bind, False
    if isinstance(bind, str):
        return sa.create_engine(sqlalchemy_url(bind), pool_pre_ping=True), True
    raise TypeError(f"expected a SQLAlchemy Engine or a database URL, got {type(bind).__name__}")


def sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", exc)
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)


def translate(exc: sa_exc.DBAPIError, *, schema: str) -> Exception:
    """Map a driver error to the exception callers act on; unknown errors pass through."""
    code = sqlstate(exc)
    if code in (UNDEFINED_TABLE, INVALID_SCHEMA):
        return OutboxTableMissingError(
            f'the outbox table "{schema}.outbox" does not exist: run '
            f"`saga-outbox outbox migrate --schema {schema} --database-url ...` "
            "(or outbox_relay.migrate(engine)) first"
        )
    if (isinstance(exc, sa_exc.OperationalError) and code is None) or code in RETRYABLE:
        return DatabaseUnavailableError(f"PostgreSQL is unavailable: {str(exc.orig).strip()}")
    return exc


def check_database(engine: sa.Engine, *, schema: str) -> None:
    """Fail fast at start-up: reachable database and an outbox table that exists."""
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'SELECT 1 FROM "{schema}".outbox LIMIT 0')
    except sa_exc.DBAPIError as exc:
        raise translate(exc, schema=schema) from exc
