"""Embedded PostgreSQL for local runs, demos and tests (pgserver, an optional dependency)."""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path
from urllib.parse import urlparse

from .exceptions import ConfigurationError

__all__ = ["embedded_postgres_url", "sqlalchemy_url"]

_servers: dict[str, object] = {}


def embedded_postgres_url(data_dir: str | os.PathLike[str] | None = None) -> str:
    """Start (or reuse) a real PostgreSQL from the pgserver wheel; return a SQLAlchemy URL.

    The server lives as long as this process (pgserver stops it at exit).
    """
    try:
        with warnings.catch_warnings():  # platformdirs warns at import when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            import pgserver  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigurationError(
            "the embedded PostgreSQL needs the 'local' extra: pip install 'saga-outbox[local]'"
        ) from exc
    path = str(Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="saga-outbox-pg-")))
    server = _servers.get(path)
    if server is None:
        logging.getLogger("pgserver").setLevel(logging.WARNING)  # its INFO drowns our output
        server = pgserver.get_server(path, cleanup_mode="stop")
        _servers[path] = server
    return sqlalchemy_url(server.get_uri())  # type: ignore[attr-defined]


def sqlalchemy_url(url: str) -> str:
    """Turn a libpq URL (postgresql://...) into a SQLAlchemy psycopg 3 URL; leave others alone."""
    scheme = urlparse(url).scheme
    if scheme in ("postgresql", "postgres"):
        return "postgresql+psycopg" + url[len(scheme) :]
    return url
