"""``--json`` of the verbs that print a table and need a database or a stack parses as JSON, with
the documented top-level shape (README "CLI reference"). One local run of the orders example
(a completed saga) serves them all; ``local up --json`` runs in a thread of its own.

The long runs have their own JSON tests: ``chaos`` (test_chaos_small.py), ``local run``
(test_local_run.py), ``python -m examples.orders demo`` (test_demo.py);
tests/unit/test_cli_output_verbs.py checks that every table verb has the flag.
"""

from __future__ import annotations

import io
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from saga_outbox.cli import main
from tests.integration.test_inspect_cli import run_orders

pytestmark = pytest.mark.integration

APP = "examples.orders.app:app"


@pytest.fixture(scope="module")
def completed(database_url: str) -> Iterator[dict[str, str]]:
    outbox, orders = f"json_outbox_{uuid.uuid4().hex[:6]}", f"json_orders_{uuid.uuid4().hex[:6]}"
    with run_orders(database_url, {"completed": {}}, outbox=outbox, orders=orders) as (_, arns):
        yield {"db": database_url, "outbox": outbox, "arn": arns["completed"]}


def _keys(*names: str) -> Callable[[Any], bool]:
    return lambda data: isinstance(data, dict) and set(names) <= set(data)


def _list_of(*names: str) -> Callable[[Any], bool]:
    return lambda data: isinstance(data, list) and bool(data) and all(set(names) <= set(d) for d in data)


VERBS: list[tuple[str, Callable[[dict[str, str]], list[str]], Callable[[Any], bool]]] = [
    (
        "outbox status",
        lambda c: ["outbox", "status", "--database-url", c["db"], "--schema", c["outbox"]],
        _keys("pending", "published", "dead", "oldest_pending_age_seconds", "stalled_groups"),
    ),
    ("workflows list", lambda c: ["workflows", "list", "--app", APP], _list_of("name", "kind", "steps")),
    (
        "cost",
        lambda c: ["cost", "--app", APP, "--events-per-second", "5"],
        _keys("usd_per_month", "total_usd_per_month", "workflows"),
    ),
    (
        "executions list",
        lambda c: ["executions", "list", "--state-machine", "OrderSaga"],
        _list_of("name", "status", "arn"),
    ),
    ("executions show", lambda c: ["executions", "show", c["arn"]], _keys("status", "states")),
    ("executions history", lambda c: ["executions", "history", c["arn"]], _list_of("id", "type")),
    (
        "reconcile",
        lambda c: [
            "reconcile",
            "--app",
            APP,
            "--database-url",
            c["db"],
            "--schema",
            c["outbox"],
            "--dry-run",
        ],
        _keys("counts", "events_checked", "lost_dispatches"),
    ),
]


# first: moto's backends are process-wide, and the module's local run below holds them until
# the module ends
def test_local_up_json_is_one_line_of_endpoints_and_the_rest_goes_to_stderr(
    database_url: str, aws_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from saga_outbox.local.stack_server import run_local_up

    out = io.StringIO()
    ready, stop = threading.Event(), threading.Event()
    outcome: list[Any] = []

    def serve() -> None:
        try:
            outcome.append(
                run_local_up(
                    APP,
                    port=0,
                    inspector_port=0,
                    database_url=database_url,
                    ready=ready,
                    stop=stop,
                    out=out,
                    json_output=True,
                )
            )
        except BaseException as exc:  # reported by the assertion below
            outcome.append(exc)
            ready.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        assert ready.wait(180), "local up did not come up"
        assert not outcome, outcome
        lines = out.getvalue().splitlines()
        assert len(lines) == 1, lines  # the banner's other lines went to stderr
        info = json.loads(lines[0])
        assert info["aws_endpoint"].startswith("http://127.0.0.1:")
        assert info["queue_url"].startswith(info["aws_endpoint"])
        assert set(info["state_machines"]) == {"OrderSaga", "OrderProjection"}
        assert info["inspector_url"].startswith("http://127.0.0.1:")
        assert info["database_url"].startswith("postgresql://")
        assert "Try (saga-outbox needs no AWS settings" in capsys.readouterr().err
    finally:
        stop.set()
        thread.join(120)
    assert outcome == [0]
    assert len(out.getvalue().splitlines()) == 1  # stopping/stopped: stderr too


@pytest.mark.parametrize(("verb", "argv", "shape"), VERBS, ids=[v[0] for v in VERBS])
def test_json_parses_with_its_documented_shape(
    verb: str,
    argv: Callable[[dict[str, str]], list[str]],
    shape: Callable[[Any], bool],
    completed: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    capsys.readouterr()
    assert main([*argv(completed), "--json"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    data = json.loads(out)  # the whole of stdout: no table, no progress line beside it
    assert shape(data), (verb, data)
