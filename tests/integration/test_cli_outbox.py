"""The `saga-outbox` CLI: migrate, status, retry-dead, and fast, specific start-up errors."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
import sqlalchemy as sa

from outbox_relay import Relay, RelayOptions, SqsFifoPublisher, enqueue
from outbox_relay.cli import main
from outbox_relay.exceptions import (
    ConfigurationError,
    OutboxTableMissingError,
    QueueNotFifoError,
    QueueNotFoundError,
)
from outbox_relay.schema import MIGRATIONS

LATEST = MIGRATIONS[-1][0]  # every migration appended, none skipped

pytestmark = pytest.mark.integration


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "outbox_relay.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_migrate_then_status_json_prints_zero_pending(database_url, schema):
    done = _cli("outbox", "migrate", "--database-url", database_url, "--schema", schema)
    assert done.returncode == 0, done.stderr
    assert f"version {LATEST}" in done.stdout
    status = _cli("outbox", "status", "--json", "--database-url", database_url, "--schema", schema)
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["pending"] == 0 and data["dead"] == 0 and data["stalled_groups"] == []


def test_status_on_a_missing_table_says_how_to_fix_it(database_url, schema, capsys):
    assert main(["outbox", "status", "--database-url", database_url, "--schema", schema]) == 2
    err = capsys.readouterr().err
    assert f'"{schema}.outbox" does not exist' in err and "saga-outbox outbox migrate" in err


def test_unreachable_database_fails_fast(capsys):
    code = main(["outbox", "status", "--database-url", "postgresql://nobody@127.0.0.1:1/none"])
    assert code == 2
    assert "PostgreSQL is unavailable" in capsys.readouterr().err


def test_retry_dead_revives_named_events(engine, database_url, outbox, capsys):
    with engine.begin() as conn:
        eid = enqueue(
            conn, aggregate_type="order", aggregate_key="1", event_type="E", payload={}, schema=outbox
        )
        conn.exec_driver_sql(f"UPDATE \"{outbox}\".outbox SET state = 'dead', attempts = 8, last_error = 'x'")
    assert main(["outbox", "retry-dead", "--database-url", database_url, "--schema", outbox]) == 2
    assert "--all" in capsys.readouterr().err
    assert (
        main(
            [
                "outbox",
                "retry-dead",
                "--database-url",
                database_url,
                "--schema",
                outbox,
                "--event-id",
                str(eid),
            ]
        )
        == 0
    )
    with engine.connect() as c:
        assert c.exec_driver_sql(f'SELECT state, attempts FROM "{outbox}".outbox').one() == ("pending", 0)


def test_startup_checks_name_the_problem(engine, outbox, sqs: Any):
    standard = sqs.create_queue(QueueName="plain")["QueueUrl"]
    fifo = sqs.create_queue(QueueName="ok.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]

    def relay(url: str, schema: str = outbox) -> Relay:
        return Relay(
            engine=engine,
            publisher=SqsFifoPublisher(queue_url=url, sqs_client=sqs),
            options=RelayOptions(schema=schema, listen=False),
        )

    with pytest.raises(QueueNotFifoError, match="not a FIFO queue"):
        relay(standard).check()
    with pytest.raises(QueueNotFoundError, match="does not exist"):
        relay(fifo.replace("ok.fifo", "missing.fifo")).check()
    with pytest.raises(OutboxTableMissingError, match="outbox migrate"):
        relay(fifo, schema="no_such_schema").check()
    with pytest.raises(ConfigurationError, match="not a URL"):
        SqsFifoPublisher(queue_url="events.fifo")
    with pytest.raises(ConfigurationError, match="claim_size=0"):
        RelayOptions(claim_size=0)
    relay(fifo).check()


def test_relay_without_a_queue_url_says_so(database_url, outbox, monkeypatch, capsys):
    monkeypatch.delenv("QUEUE_URL", raising=False)
    assert main(["relay", "--database-url", database_url, "--schema", outbox]) == 2
    assert "--queue-url" in capsys.readouterr().err


def test_migrate_is_idempotent_and_explicit(engine, schema):
    from outbox_relay import migrate, migration_statements, outbox_table

    outbox_table(schema)  # defining the table runs no DDL
    with engine.connect() as c:
        assert (
            c.exec_driver_sql(
                "SELECT count(*) FROM pg_namespace WHERE nspname = %(s)s", {"s": schema}
            ).scalar()
            == 0
        )
    assert migrate(engine, schema=schema) == migrate(engine, schema=schema) == LATEST
    assert any("CREATE TABLE" in s for s in migration_statements(schema))
    insp = sa.inspect(engine)
    with pytest.warns(sa.exc.SAWarning, match="xid8"):  # SQLAlchemy does not know xid8 (txid)
        columns = {c["name"] for c in insp.get_columns("outbox", schema=schema)}
    assert columns >= {
        "event_id",
        "aggregate_type",
        "aggregate_key",
        "event_type",
        "payload",
        "headers",
        "created_at",
        "available_at",
        "published_at",
        "attempts",
        "last_error",
        "state",
        "first_sent_at",
    }
