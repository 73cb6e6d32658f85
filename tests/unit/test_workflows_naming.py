from __future__ import annotations

import re
import uuid

import pytest

from saga_outbox.workflows import WorkflowValidationError, execution_name

VALID = re.compile(r"[A-Za-z0-9_-]{1,80}")


def test_readable_for_a_uuid_event() -> None:
    event_id = uuid.UUID("3f0e1c9a-8d7b-4a51-9e4c-2b6f8a1d0c33")
    assert execution_name("OrderSaga", event_id) == "3f0e1c9a-8d7b-4a51-9e4c-2b6f8a1d0c33-OrderSaga"
    assert execution_name("OrderSaga", str(event_id)) == execution_name("OrderSaga", event_id)


@pytest.mark.parametrize(
    "event_id",
    ["x" * 200, "order:42/1", "with space", "ü-unicode", "a" * 79, str(uuid.uuid4())],
)
@pytest.mark.parametrize("workflow", ["OrderSaga", "W" * 80, "a-b_c"])
def test_always_valid_and_deterministic(event_id: str, workflow: str) -> None:
    name = execution_name(workflow, event_id)
    assert VALID.fullmatch(name), name
    assert name == execution_name(workflow, event_id)


def test_distinct_events_and_workflows_give_distinct_names() -> None:
    long = "e" * 100
    names = {
        execution_name("OrderSaga", "1"),
        execution_name("OrderSaga", "2"),
        execution_name("OrderProjection", "1"),
        execution_name("OrderSaga", long),
        execution_name("OrderSaga", long + "x"),
        execution_name("OrderSaga", "a/b"),
        execution_name("OrderSaga", "a:b"),
    }
    assert len(names) == 7


def test_rejects_empty_event_and_bad_workflow() -> None:
    with pytest.raises(WorkflowValidationError, match="event id"):
        execution_name("OrderSaga", "")
    with pytest.raises(WorkflowValidationError, match="'bad name'"):
        execution_name("bad name", "1")
