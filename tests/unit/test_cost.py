"""``saga-outbox cost``: the arithmetic against a case computed by hand."""

from __future__ import annotations

import json

import pytest

from saga_outbox import SagaApp
from saga_outbox.cli import main
from saga_outbox.ops import PRICES, CostAssumptions, estimate_cost
from saga_outbox.ops.cost import CostInputError, happy_path
from tests.apps import room_app


def _app() -> SagaApp:
    return room_app(with_log=True)


def test_happy_path_is_read_off_the_compiled_definition() -> None:
    path = [s["name"] for s in happy_path(_app().get_workflow("RoomSaga"))]
    assert path[0] == "Start" and path[-1] == "SagaCompleted"
    assert path.index("BookRoom") < path.index("ChargeCard") < path.index("MarkCompleted")
    assert [s["name"] for s in happy_path(_app().get_workflow("RoomLog"))] == [
        "Start",
        "Log",
        "MarkCompleted",
        "SagaCompleted",
    ]


def test_arithmetic_matches_a_hand_computed_case() -> None:
    a = CostAssumptions(
        step_ms=100,
        step_memory_mb=1024,
        dispatcher_ms_per_batch=1000,
        dispatcher_memory_mb=1024,
        batch_size=10,
        message_kb=1,
        express_overhead_ms=0,
        relay_seconds_per_minute=0,
        relay_memory_mb=1024,
        idle_receives_per_month=0,
    )
    est = estimate_cost(_app(), events_per_second=1, mix={"RoomRequested": 3, "RoomBooked": 1}, assumptions=a)
    month = 30 * 24 * 3600  # 2,592,000 events at 1/s
    requested, booked = month * 0.75, month * 0.25
    saga_states = len(happy_path(_app().get_workflow("RoomSaga")))  # Start, 2 tasks, Mark, Succeed...
    by_hand = {
        # relay: one 10-entry SendMessageBatch (10 KB: one 64 KB chunk); dispatcher: receive + delete
        "sqs": (month / 10) * 3 * 0.50e-6,
        "step_functions_standard": requested * saga_states * 0.025e-3,
        # Express: one request + 100 ms (one 100 ms task) x 64 MB
        "step_functions_express": month * (1e-6 + 0.1 * (64 / 1024) * 0.00001667),
        # steps Lambda: 2 tasks per saga, 1 per Express run; 100 ms at 1 GB each
        "lambda_steps": (requested * 2 + month) * (0.2e-6 + 0.1 * 0.0000133334),
        "lambda_dispatcher": (month / 10) * (0.2e-6 + 1.0 * 0.0000133334),
        "lambda_relay": 43_200 * 0.2e-6,
    }
    assert est.mix == {"RoomRequested": 0.75, "RoomBooked": 0.25}
    assert requested + booked == month
    assert set(est.components) == set(by_hand)
    for name, usd in by_hand.items():
        assert est.components[name] == pytest.approx(usd, rel=1e-9), name
    saga = next(w for w in est.workflows if w.workflow == "RoomSaga")
    assert (saga.executions_per_month, saga.tasks_per_execution) == (requested, 2)
    assert est.total == pytest.approx(sum(by_hand.values()))
    assert PRICES.region == "us-east-1" and PRICES.as_of


def test_bad_inputs_name_the_value() -> None:
    with pytest.raises(CostInputError, match="'Nope'"):
        estimate_cost(_app(), events_per_second=1, mix={"Nope": 1})
    with pytest.raises(CostInputError, match="-1"):
        estimate_cost(_app(), events_per_second=-1)
    with pytest.raises(CostInputError, match="batch_size"):
        CostAssumptions(batch_size=11)


def test_cli_json(monkeypatch, capsys) -> None:
    monkeypatch.setattr("saga_outbox._discovery.load_app", lambda spec, check=True: _app())
    args = ["cost", "--app", "x:app", "--events-per-second", "10"]
    assert main([*args, "--mix", "RoomRequested=1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total_usd_per_month"] > 0 and data["prices"]["region"] == "us-east-1"
    assert main([*args, "--mix", "RoomRequested"]) == 2
    assert "EVENT_TYPE=SHARE" in capsys.readouterr().err
