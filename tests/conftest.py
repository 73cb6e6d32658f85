"""Shared fixtures: a real PostgreSQL (embedded, from the `local` extra's wheel, unless
SAGA_OUTBOX_TEST_DATABASE_URL points elsewhere) and fake AWS credentials for moto."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from outbox_relay.embedded import embedded_postgres_url, sqlalchemy_url


def pytest_configure(config: pytest.Config) -> None:
    # moto's SQS loses messages under concurrent deletes (saga_outbox.local._moto_fixes): every
    # test that runs a relay and pollers on threads would otherwise be a flaky loss test
    from saga_outbox.local._moto_fixes import apply

    apply()


@pytest.fixture(scope="session")
def database_url() -> str:
    configured = os.environ.get("SAGA_OUTBOX_TEST_DATABASE_URL")
    if configured:
        return sqlalchemy_url(configured)
    # No data dir: the server runs in a temp dir that is removed when the test run exits
    # (pytest's own tmp dirs are kept for three runs: ~40 MB each).
    return embedded_postgres_url()


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[sa.Engine]:
    eng = sa.create_engine(database_url, pool_size=10, max_overflow=20)
    yield eng
    eng.dispose()


@pytest.fixture
def schema(engine: sa.Engine) -> Iterator[str]:
    """A fresh, empty schema name per test (dropped afterwards), so tests never share tables."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    with engine.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and region so boto3 never reaches a real account."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
