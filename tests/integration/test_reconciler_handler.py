"""The scheduled reconciler's Lambda handler, invoked as Lambda would (the module-level
``handler`` on a configured runtime) against moto's Step Functions and a real PostgreSQL: it
starts an injected lost dispatch under the dispatcher's name, logs it with its event id and
execution name, and emits one EMF metric per finding type, zeros included."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from outbox_relay import enqueue
from saga_outbox.lambdas import runtime as lambda_runtime
from saga_outbox.lambdas.config import RuntimeConfig
from saga_outbox.lambdas.handlers import reconciler
from saga_outbox.local import LocalLambdaContext, LocalOptions, LocalRuntime
from saga_outbox.ops._reconcile_findings import METRICS
from saga_outbox.workflows import execution_name
from tests.apps import room_app

pytestmark = pytest.mark.integration


@pytest.fixture
def local(
    database_url: str, schema: str, aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LocalRuntime]:
    options = LocalOptions(database_url=database_url, outbox_schema=schema)
    with LocalRuntime(room_app(with_log=True), options) as rt:
        rt.stop_workers()  # nothing but the reconciler starts executions in these tests
        # the local runtime quiets Powertools; here its EMF output and logs are what we check
        monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
        monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "INFO")
        yield rt
    lambda_runtime.reset()


def _lose(rt: LocalRuntime, room: str) -> uuid.UUID:
    """A row marked published an hour ago whose message never reached a dispatcher."""
    assert rt.engine is not None
    s = rt.options.outbox_schema
    with rt.engine.begin() as conn:
        event_id = enqueue(
            conn,
            aggregate_type="room",
            aggregate_key=room,
            event_type="RoomRequested",
            payload={"room": room},
            schema=s,
        )
        conn.exec_driver_sql(
            f"UPDATE \"{s}\".outbox SET state = 'published', published_at = now() - interval '1 hour', "
            "attempts = 1, send_count = 1 WHERE event_id = %(e)s",
            {"e": event_id},
        )
    return event_id


def _configure(rt: LocalRuntime, **settings: Any) -> None:
    lambda_runtime.configure(
        RuntimeConfig(
            database_url="postgresql://injected",
            outbox_schema=rt.options.outbox_schema,
            state_machine_arns=dict(rt.state_machine_arns),
            **settings,
        ),
        app=rt.app,
        engine=rt.engine,
        sfn_client=rt.clients["stepfunctions"],
    )


def _emf(stdout: str) -> list[dict[str, Any]]:
    blobs = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{") and '"_aws"' in line:
            blobs.append(json.loads(line))
    return blobs


def test_handler_repairs_a_lost_dispatch_and_emits_every_metric(
    local: LocalRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    lost = _lose(local, "101")
    _configure(local)
    result = reconciler.handler({"source": "aws.events"}, LocalLambdaContext(function_name="reconciler"))
    assert result["counts"] == {
        "lost_dispatches": 1,
        "started": 1,
        "start_failures": 0,
        "stuck": 0,
        "compensation_failed": 0,
        "failed": 0,
    }
    name = execution_name("RoomSaga", lost)
    deadline = time.monotonic() + 60
    while True:
        [execution] = local.executions("RoomSaga")
        if execution["status"] != "RUNNING" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert (execution["name"], execution["status"]) == (name, "SUCCEEDED")
    # the Express workflow was not listed (AWS does not serve it): no execution, no call
    assert local.executions("RoomLog") == []

    out = capsys.readouterr().out
    [emf] = [b for b in _emf(out) if "ReconcileLostDispatches" in b]
    directive = emf["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "SagaOutbox"
    assert ["service"] in directive["Dimensions"] and emf["service"] == "reconciler"
    emitted = {m["Name"]: emf[m["Name"]] for m in directive["Metrics"]}  # EMF values are lists
    assert emitted == {
        METRICS["lost_dispatches"]: [1.0],
        METRICS["started"]: [1.0],
        METRICS["start_failures"]: [0.0],
        METRICS["stuck"]: [0.0],
        METRICS["compensation_failed"]: [0.0],
        METRICS["failed"]: [0.0],
    }
    logged = [json.loads(line) for line in out.splitlines() if '"lost dispatch"' in line]
    found = [(r["event_id"], r["execution_name"], r["action"]) for r in logged]
    assert found == [(str(lost), name, "started")]

    # the next scheduled run finds nothing and still reports every metric, as zeros
    again = reconciler.handler({}, LocalLambdaContext(function_name="reconciler"))
    assert set(again["counts"].values()) == {0}
    [emf] = [b for b in _emf(capsys.readouterr().out) if "ReconcileLostDispatches" in b]
    assert {m["Name"] for m in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]} == set(METRICS.values())
    assert len(local.executions("RoomSaga")) == 1


def test_recent_events_wait_for_the_dispatcher(local: LocalRuntime) -> None:
    """Younger than RECONCILE_OLDER_THAN_MINUTES: the dispatcher may still be retrying it."""
    _lose(local, "102")
    _configure(local, reconcile_older_than_minutes=90)
    result = reconciler.handler({}, LocalLambdaContext(function_name="reconciler"))
    assert result["counts"]["lost_dispatches"] == 0 and result["events_checked"] == 0
    assert local.executions("RoomSaga") == []


def test_a_window_that_cannot_hold_an_event_fails_the_cold_start(local: LocalRuntime) -> None:
    from saga_outbox.ops.reconcile import ReconcileInputError

    _configure(local, reconcile_older_than_minutes=120, reconcile_since_hours=1)
    with pytest.raises(ReconcileInputError, match="since_hours"):
        reconciler.handler({}, LocalLambdaContext(function_name="reconciler"))
