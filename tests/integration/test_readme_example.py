"""README's embedding example, executed exactly as written in a database of its own (only
DATABASE_URL and QUEUE_URL are supplied, as a user would)."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import boto3
import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"


def _example() -> str:
    block = re.search(r"<!-- embedding-example:start -->\s*```python\n(.*?)```", README.read_text(), re.S)
    assert block, "README lost its embedding example"
    return block.group(1)


def test_embedding_example_publishes_the_event(engine, database_url, sqs, queue_url):
    code = _example()
    assert len([line for line in code.splitlines() if line.strip() and not line.startswith("#")]) <= 14
    db = f"readme_{uuid.uuid4().hex[:8]}"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {db}")
    url = sa.make_url(database_url).set(database=db)
    app_engine = sa.create_engine(url)
    with app_engine.begin() as conn:  # the host app's own table
        conn.exec_driver_sql("CREATE TABLE accounts (id int PRIMARY KEY, balance int)")
    try:
        first, marker, rest = code.partition("# ... your app runs")
        namespace = {"DATABASE_URL": url.render_as_string(hide_password=False), "QUEUE_URL": queue_url}
        exec(compile(first, "README.md", "exec"), namespace)
        client = boto3.client("sqs", region_name="us-east-1")
        deadline = time.monotonic() + 10
        messages: list = []
        while not messages and time.monotonic() < deadline:
            messages = client.receive_message(QueueUrl=queue_url).get("Messages", [])
            time.sleep(0.05)
        exec(compile(marker + rest, "README.md", "exec"), namespace)
        assert messages and '"event_type":"AccountOpened"' in messages[0]["Body"]
        with app_engine.connect() as c:
            assert c.exec_driver_sql("SELECT balance FROM accounts").scalar() == 0
            assert c.exec_driver_sql("SELECT state FROM saga_outbox.outbox").scalar() == "published"
    finally:
        namespace_engine = namespace.get("engine")
        if namespace_engine is not None:
            namespace_engine.dispose()
        app_engine.dispose()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
