from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import sqlalchemy as sa
from moto import mock_aws

from outbox_relay import migrate


@pytest.fixture
def outbox(engine: sa.Engine, schema: str) -> str:
    """A migrated outbox in this test's own schema; returns the schema name."""
    migrate(engine, schema=schema)
    return schema


@pytest.fixture
def sqs(aws_env: None) -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1")


@pytest.fixture
def queue_url(sqs: Any) -> str:
    return sqs.create_queue(QueueName="events.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
