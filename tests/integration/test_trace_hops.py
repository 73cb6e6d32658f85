"""One request, one trace id, through every hop of the local runtime.

The orders example's command API runs as it does under Lambda, with the X-Ray header the Lambda
runtime provides (``_X_AMZN_TRACE_ID``). The same trace id must then be in: the outbox row's
headers, the SQS message's ``AWSTraceHeader`` (as the dispatcher's records carry it), every
execution's ``traceHeader`` (DescribeExecution), every step's log record, the events the
steps emit, the relay's and the dispatcher's log records, and ``executions show``.

Where moto drops the header (SendMessageBatch, StartExecution, DescribeExecution, the Lambda
tasks' invocation trace) the local bridge carries it as AWS does
(saga_outbox.local._moto_tracing); without the bridge these assertions fail.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from examples.orders.api import handle_http
from examples.orders.app import create_app
from outbox_relay import EventIdConflictError, InvalidTraceHeaderError, enqueue, migrate, outbox_table
from saga_outbox.inspector.cli import main as inspector_main
from saga_outbox.local.lambda_bridge import LocalLambdaContext
from saga_outbox.local.runtime import LocalOptions, LocalRuntime

pytestmark = pytest.mark.integration

REQUEST_ROOT = "1-5759e988-bd862e3fe1be46a994272793"
REQUEST_TRACE = f"Root={REQUEST_ROOT};Parent=53995c3f42cd8ad8;Sampled=1;Lineage=1:2a0a2a0a:0"
#: what the dispatcher's and relay's own processes would have: a hop that read its ambient
#: trace instead of the event's would show this root and fail the test
OTHER_TRACE = "Root=1-67891233-abcdef012345678912345678;Parent=463ac35c9f6413ad;Sampled=1"


class Capture(logging.Handler):
    """Collects records of one logger as structured dicts: through the Powertools formatter
    (what CloudWatch gets) for the handlers, from the record's ``extra`` for the relay."""

    def __init__(self, formatter: logging.Formatter | None) -> None:
        super().__init__(logging.DEBUG)
        self.powertools = formatter
        self.records: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if self.powertools is not None:
            self.records.append(json.loads(self.powertools.format(record)))
        else:
            self.records.append({**record.__dict__, "message": record.getMessage()})


@contextmanager
def captured(name: str, *, powertools: bool) -> Iterator[Capture]:
    logger = logging.getLogger(name)
    formatter = logger.handlers[0].formatter if powertools else None
    handler = Capture(formatter)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _place_order(runtime: LocalRuntime, orders: str, outbox: str) -> str:
    event = {
        "version": "2.0",
        "rawPath": "/orders",
        "headers": {"content-type": "application/json"},
        "requestContext": {"stage": "$default", "http": {"method": "POST", "path": "/orders"}},
        "body": json.dumps(
            {"customer_id": "c-1", "items": [{"sku": "BOOK-1", "qty": 1}], "amount_cents": 900}
        ),
        "isBase64Encoded": False,
    }
    assert runtime.engine is not None
    response = handle_http(
        event,
        engine=runtime.engine,
        orders_schema=orders,
        outbox_schema=outbox,
        context=LocalLambdaContext(function_name="command-api"),
    )
    assert response["statusCode"] == 202, response
    return str(json.loads(response["body"])["order_id"])


def _wait(runtime: LocalRuntime, outbox: str, deadline: float) -> list[dict[str, Any]]:
    assert runtime.engine is not None
    t = outbox_table(outbox)
    quiet = 0
    while True:
        executions = [e for wf in runtime.app.workflows for e in runtime.executions(wf.name)]
        with runtime.engine.connect() as conn:
            pending = conn.execute(sa.select(sa.func.count()).where(t.c.state == "pending")).scalar_one()
        done = executions and all(e["status"] != "RUNNING" for e in executions)
        quiet = quiet + 1 if done and pending == 0 and runtime.queue_depth() == 0 else 0
        if quiet >= 3:  # a step's follow-on event may just have been committed
            return executions
        assert time.monotonic() < deadline, f"did not settle: {executions}"
        time.sleep(0.2)


def test_one_trace_id_from_the_command_api_through_every_step(
    database_url: str, engine: sa.Engine, schema: str, aws_env: None, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    outbox, orders = f"{schema}_ob", schema
    runtime = LocalRuntime(
        create_app(schema=orders), LocalOptions(database_url=database_url, outbox_schema=outbox)
    )
    runtime.start(run_workers=False)
    try:
        records: list[dict[str, Any]] = []
        dispatch = runtime.dispatcher_handler

        def recording_dispatcher(event: dict[str, Any], context: Any) -> Any:
            records.extend(event["Records"])
            return dispatch(event, context)

        runtime.dispatcher_handler = recording_dispatcher
        # the command API's invocation, as the Lambda runtime sets it up
        monkeypatch.setenv("_X_AMZN_TRACE_ID", REQUEST_TRACE)
        order_id = _place_order(runtime, orders, outbox)
        monkeypatch.setenv("_X_AMZN_TRACE_ID", OTHER_TRACE)
        with (
            captured("outbox_relay", powertools=False) as relay_log,
            captured("dispatcher", powertools=True) as dispatcher_log,
            captured("steps", powertools=True) as steps_log,
        ):
            runtime.start_workers()
            executions = _wait(runtime, outbox, time.monotonic() + 120)
            runtime.stop_workers()

        # 1. the outbox row: the caller's X-Ray header, normalized (Lineage is not forwarded)
        t = outbox_table(outbox)
        with engine.connect() as conn:
            rows = conn.execute(sa.select(t.c.event_id, t.c.event_type, t.c.headers).order_by(t.c.id)).all()
        placed = [r for r in rows if r.event_type == "OrderPlaced"]
        assert len(placed) == 1
        assert placed[0].headers == {
            "X-Amzn-Trace-Id": f"Root={REQUEST_ROOT};Parent=53995c3f42cd8ad8;Sampled=1"
        }
        # the steps' follow-on events continue the trace (one hop further: their own parent)
        follow_ons = [r for r in rows if r.event_type != "OrderPlaced"]
        assert follow_ons, rows
        for row in follow_ons:
            assert row.headers["X-Amzn-Trace-Id"].startswith(f"Root={REQUEST_ROOT};Parent="), row

        # 2. every SQS message the dispatcher got carries it as AWSTraceHeader
        assert len({r["body"] for r in records}) == len(rows)
        for record in records:
            assert record["attributes"]["AWSTraceHeader"].startswith(f"Root={REQUEST_ROOT};"), record

        # 3. every execution (the saga and each projection) was started with it
        sfn = runtime.clients["stepfunctions"]
        assert {e["stateMachineArn"].rsplit(":", 1)[-1] for e in executions} == {
            "OrderSaga",
            "OrderProjection",
        }
        assert len(executions) == sum(len(runtime.app.workflows_for(r.event_type)) for r in rows)
        described = {e["name"]: sfn.describe_execution(executionArn=e["executionArn"]) for e in executions}
        for name, d in described.items():
            assert d["traceHeader"].startswith(f"Root={REQUEST_ROOT};"), (name, d.get("traceHeader"))

        # 4. every step logged the request's trace id with its event, aggregate and execution
        started = [r for r in steps_log.records if r["message"] == "step started"]
        assert {r["execution_name"] for r in started} == set(described)
        event_ids = {str(r.event_id) for r in rows}
        for record in started:
            assert record["trace_id"] == REQUEST_ROOT, record
            assert record["event_id"] in event_ids
            assert record["aggregate"] == f"order:{order_id}"
        saga = next(n for n, d in described.items() if d["stateMachineArn"].endswith(":OrderSaga"))
        saga_states = {r["state"] for r in started if r["execution_name"] == saga}
        assert {"ReserveInventory", "ChargePayment", "CreateShipment", "ConfirmOrder"} <= saga_states

        # 5. the dispatcher's and the relay's records carry the same keys
        for record in (r for r in dispatcher_log.records if r["message"] == "execution started"):
            assert record["trace_id"] == REQUEST_ROOT, record
            assert record["execution_name"] in described
            assert (record["event_id"] in event_ids, record["aggregate"]) == (True, f"order:{order_id}")
        assert len([r for r in dispatcher_log.records if r["message"] == "execution started"]) == len(
            executions
        )
        sent = [r for r in relay_log.records if r["message"] == "event sent"]
        assert {r["event_id"] for r in sent} == event_ids
        assert {(r["trace_id"], r["aggregate"]) for r in sent} == {(REQUEST_ROOT, f"order:{order_id}")}

        # 6. executions show prints it
        capsys.readouterr()
        arn = next(e["executionArn"] for e in executions if e["name"] == saga)
        assert inspector_main(["executions", "show", arn]) == 0
        shown = capsys.readouterr().out
        trace_line = next(line for line in shown.splitlines() if line.startswith("Trace"))
        assert trace_line.split() == ["Trace", REQUEST_ROOT], shown
        capsys.readouterr()
        assert inspector_main(["executions", "show", arn, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["trace_id"] == REQUEST_ROOT
    finally:
        runtime.stop()


def test_a_request_without_a_trace_sends_none(
    database_url: str, engine: sa.Engine, schema: str, aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ambient trace: no header anywhere, and nothing fails for it (the relay sends no
    system attribute, the dispatcher no traceHeader)."""
    monkeypatch.delenv("_X_AMZN_TRACE_ID", raising=False)
    outbox, orders = f"{schema}_ob", schema
    runtime = LocalRuntime(
        create_app(schema=orders), LocalOptions(database_url=database_url, outbox_schema=outbox)
    )
    runtime.start(run_workers=False)
    try:
        records: list[dict[str, Any]] = []
        dispatch = runtime.dispatcher_handler

        def recording_dispatcher(event: dict[str, Any], context: Any) -> Any:
            records.extend(event["Records"])
            return dispatch(event, context)

        runtime.dispatcher_handler = recording_dispatcher
        _place_order(runtime, orders, outbox)
        runtime.start_workers()
        executions = _wait(runtime, outbox, time.monotonic() + 120)
        sfn = runtime.clients["stepfunctions"]
        assert all(e["status"] == "SUCCEEDED" for e in executions), executions
        assert records and all("AWSTraceHeader" not in r["attributes"] for r in records)
        for e in executions:
            assert "traceHeader" not in sfn.describe_execution(executionArn=e["executionArn"])
        t = outbox_table(outbox)
        with engine.connect() as conn:
            headers = conn.execute(sa.select(t.c.headers)).scalars().all()
        assert all("X-Amzn-Trace-Id" not in h and "traceparent" not in h for h in headers), headers
    finally:
        runtime.stop()


def test_enqueue_records_the_ambient_trace_unless_given_one(
    engine: sa.Engine, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrate(engine, schema=schema)
    t = outbox_table(schema)
    event = {
        "aggregate_type": "order",
        "aggregate_key": "1",
        "event_type": "OrderPlaced",
        "payload": {"a": 1},
    }
    mine = "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"
    monkeypatch.setenv("_X_AMZN_TRACE_ID", REQUEST_TRACE)
    with engine.begin() as conn:
        first = enqueue(conn, **event, schema=schema)
        given = enqueue(conn, **event, headers={"traceparent": mine}, schema=schema)
        # refused before any SQL, naming the value; the caller's transaction stays usable
        with pytest.raises(InvalidTraceHeaderError, match=r"'traceparent'.*'not-a-trace'"):
            enqueue(conn, **event, headers={"traceparent": "not-a-trace"}, schema=schema)
        assert conn.exec_driver_sql("SELECT 1").scalar_one() == 1
    # a retry of the same event under another request's trace is the same event, not a conflict
    monkeypatch.setenv("_X_AMZN_TRACE_ID", OTHER_TRACE)
    with engine.begin() as conn:
        assert enqueue(conn, **event, event_id=first, schema=schema) == first
    with engine.connect() as conn:
        headers = dict(conn.execute(sa.select(t.c.event_id, t.c.headers)).all())
    assert headers == {
        first: {"X-Amzn-Trace-Id": f"Root={REQUEST_ROOT};Parent=53995c3f42cd8ad8;Sampled=1"},
        given: {"traceparent": mine},
    }
    # other headers still tell two events apart
    with engine.begin() as conn, pytest.raises(EventIdConflictError):
        enqueue(conn, **event, event_id=first, headers={"causation_id": "x"}, schema=schema)
