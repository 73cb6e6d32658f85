"""Engine handling and PostgreSQL error classification, in one place.

Every database error the library meets goes through :func:`translate`, which returns a
:class:`~outbox_relay.exceptions.DatabaseError` subclass (never the vendor's exception) and
says whether the same work may succeed later: the relay retries transient errors with backoff,
and no database error of any kind ends a relay pipeline.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from .embedded import sqlalchemy_url
from .exceptions import (
    DatabaseError,
    DatabaseTimeoutError,
    DatabaseUnavailableError,
    OutboxTableMissingError,
)

UNDEFINED_TABLE = "42P01"
INVALID_SCHEMA = "3F000"
UNIQUE_VIOLATION = "23505"
DEADLOCK = "40P01"
#: statement_timeout / user cancel (57014) and lock_timeout (55P03)
TIMEOUTS = frozenset({"57014", "55P03"})
#: the server is going away, full, or read-only (a failed-over Aurora writer is read-only
#: until the endpoint moves): the same statement works once it is back
UNAVAILABLE = frozenset({"57P01", "57P02", "57P03", "53300", "53000", "53100", "53200", "25006", "58000"})
#: serialization failure and deadlock: the transaction can simply run again
RETRY = frozenset({"40001", DEADLOCK})
# kept for callers that imported the former single set
RETRYABLE = RETRY | UNAVAILABLE | TIMEOUTS


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


def translate(exc: BaseException, *, schema: str) -> DatabaseError:
    """Map a driver or SQLAlchemy error to the exception callers act on."""
    code = sqlstate(exc)
    detail = str(getattr(exc, "orig", None) or exc).strip()
    if code in (UNDEFINED_TABLE, INVALID_SCHEMA):
        return OutboxTableMissingError(
            f'the outbox table "{schema}.outbox" does not exist: run '
            f"`saga-outbox outbox migrate --schema {schema} --database-url ...` "
            "(or outbox_relay.migrate(engine)) first",
            sqlstate=code,
        )
    if code in TIMEOUTS:
        return DatabaseTimeoutError(
            f"PostgreSQL cancelled a statement ({code}, statement_timeout or lock_timeout): {detail}",
            sqlstate=code,
            transient=True,
        )
    if code is None or code.startswith("08") or code in UNAVAILABLE:
        # no SQLSTATE: the connection itself failed (refused, reset, pool exhausted)
        return DatabaseUnavailableError(f"PostgreSQL is unavailable: {detail}", sqlstate=code, transient=True)
    if code in RETRY:
        return DatabaseError(
            f"PostgreSQL aborted the transaction ({code}): {detail}", sqlstate=code, transient=True
        )
    return DatabaseError(f"PostgreSQL error {code}: {detail}", sqlstate=code)


def check_database(engine: sa.Engine, *, schema: str) -> None:
    """Fail fast at start-up: reachable database and an outbox table that exists."""
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'SELECT 1 FROM "{schema}".outbox LIMIT 0')
    except sa_exc.SQLAlchemyError as exc:
        raise translate(exc, schema=schema) from exc
