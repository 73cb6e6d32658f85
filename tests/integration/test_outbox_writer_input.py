"""enqueue refuses bad input before any SQL, with a named error, and the caller's transaction
stays usable afterwards (nothing lost, nothing aborted)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa

import outbox_relay.exceptions as errors
from outbox_relay import InvalidEventError, enqueue

pytestmark = pytest.mark.integration


def _enqueue(conn: Any, schema: str, **kw: Any) -> uuid.UUID:
    event = {"aggregate_type": "order", "aggregate_key": "1", "event_type": "E", "payload": {}}
    event.update(kw)
    return enqueue(conn, schema=schema, **event)


def _refused_then_usable(engine: sa.Engine, schema: str, error: str, **kw: Any) -> InvalidEventError:
    """enqueue(**kw) raises errors.<error>; then the same transaction enqueues and commits."""
    with engine.connect() as conn:
        with conn.begin():
            with pytest.raises(InvalidEventError) as info:
                _enqueue(conn, schema, **kw)
            kept = _enqueue(conn, schema, payload={"ok": True})
        rows = conn.exec_driver_sql(f'SELECT event_id FROM "{schema}".outbox').scalars().all()
    assert type(info.value).__name__ == error, repr(info.value)
    assert isinstance(info.value, getattr(errors, error))
    assert kept in rows
    return info.value


def test_a_colon_in_the_aggregate_type_is_refused(engine, outbox):
    # "order:eu" + "42" and "order" + "eu:42" would share the MessageGroupId "order:eu:42"
    err = _refused_then_usable(
        engine, outbox, "AggregateTypeSeparatorError", aggregate_type="order:eu", aggregate_key="42"
    )
    assert "'order:eu'" in str(err)
    with engine.begin() as conn:  # the key may contain ":"
        _enqueue(conn, outbox, aggregate_type="order", aggregate_key="eu:42")
