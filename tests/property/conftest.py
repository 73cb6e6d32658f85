"""Fixtures and budgets of the stateful property tests (real PostgreSQL, moto in-process).

Two Hypothesis profiles, chosen by ``HYPOTHESIS_PROFILE``: ``outbox-test`` (the default, what
``make test`` runs: a small budget that adds well under a minute) and ``fuzz`` (``make fuzz``:
hundreds of examples, longer runs). They are applied to the state machines only (never loaded
globally), so no other test's Hypothesis settings change. ``database=None``: nothing is written
into the work tree; a failure prints its shrunk steps and a ``@reproduce_failure`` blob.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from moto import mock_aws

from outbox_relay import migrate

_COMMON: dict[str, Any] = {
    # a step is a few database round trips on a shared 2-core machine: no per-example deadline
    "deadline": None,
    "database": None,
    "print_blob": True,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
settings.register_profile("outbox-test", max_examples=20, stateful_step_count=30, **_COMMON)
settings.register_profile("fuzz", max_examples=300, stateful_step_count=50, **_COMMON)


@pytest.fixture
def hypothesis_settings() -> settings:
    """The settings the state machines run with (``HYPOTHESIS_PROFILE``, default ``outbox-test``)."""
    name = os.environ.get("HYPOTHESIS_PROFILE", "outbox-test")
    if name not in ("outbox-test", "fuzz"):
        raise pytest.UsageError(f"HYPOTHESIS_PROFILE={name!r}: use 'outbox-test' or 'fuzz'")
    return settings.get_profile(name)


@pytest.fixture
def outbox(engine: sa.Engine, schema: str) -> str:
    """A migrated outbox in this test's own schema (examples truncate it); the schema name."""
    migrate(engine, schema=schema)
    return schema


@pytest.fixture
def sqs(aws_env: None) -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1")
