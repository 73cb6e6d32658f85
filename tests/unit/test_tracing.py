"""outbox_relay.tracing: W3C ↔ X-Ray conversion, malformed headers, the ambient context, and how
the relay's entries and the dispatcher's starts carry the header (issue 14)."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from opentelemetry import trace as otel
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from outbox_relay import InvalidEventError, InvalidTraceHeaderError, OutboxEnvelope
from outbox_relay.publisher import SqsFifoPublisher
from outbox_relay.sending import build_messages
from outbox_relay.store import ClaimedRow
from outbox_relay.tracing import (
    TraceContext,
    ambient_trace_headers,
    check_trace_headers,
    current_lambda_trace_header,
    lambda_trace_header,
    parse_trace_header,
    parse_traceparent,
    parse_xray_header,
    trace_id_of,
    xray_header_from_headers,
    xray_header_from_json,
)
from saga_outbox.lambdas.dispatching import Dispatcher, Route, execution_trace_header
from saga_outbox.workflows.definition import WorkflowKind

# the pair AWS's X-Ray documentation gives for one trace in both formats
W3C = "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"
XRAY = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
ROOT = "1-5759e988-bd862e3fe1be46a994272793"


def test_w3c_traceparent_converts_to_the_xray_header() -> None:
    context = parse_traceparent(W3C)
    assert context == TraceContext(
        trace_id="5759e988bd862e3fe1be46a994272793", parent_id="53995c3f42cd8ad8", sampled=True
    )
    assert context.to_xray() == XRAY
    assert context.xray_trace_id == ROOT


def test_xray_header_converts_to_w3c_and_back() -> None:
    context = parse_xray_header(XRAY)
    assert context.to_traceparent() == W3C
    assert parse_traceparent(context.to_traceparent()).to_xray() == XRAY


def test_unsampled_and_undecided() -> None:
    assert parse_traceparent(W3C[:-2] + "00").to_xray().endswith(";Sampled=0")
    undecided = parse_xray_header(f"Root={ROOT};Sampled=?")
    assert (undecided.parent_id, undecided.sampled) == (None, None)
    assert undecided.to_xray() == f"Root={ROOT}"
    # W3C needs a parent span: a fresh one is made, the trace id stays
    assert parse_traceparent(undecided.to_traceparent()).trace_id == undecided.trace_id


def test_xray_fields_in_any_order_and_lambda_lineage_dropped() -> None:
    lambda_env = f"Sampled=1;Parent=53995c3f42cd8ad8;Root={ROOT};Lineage=1:2a0a2a0a:0"
    assert parse_xray_header(lambda_env).to_xray() == XRAY
    assert parse_trace_header(lambda_env).to_xray() == XRAY
    assert parse_trace_header(W3C).to_xray() == XRAY


def test_child_keeps_the_trace_and_draws_a_new_parent() -> None:
    context = parse_xray_header(XRAY)
    child = context.child()
    assert (child.trace_id, child.sampled) == (context.trace_id, context.sampled)
    assert child.parent_id != context.parent_id and len(child.parent_id or "") == 16


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8",  # no flags
        "00-5759E988BD862E3FE1BE46A994272793-53995c3f42cd8ad8-01",  # W3C is lower-case
        "00-00000000000000000000000000000000-53995c3f42cd8ad8-01",  # all-zero trace id
        "00-5759e988bd862e3fe1be46a994272793-0000000000000000-01",  # all-zero parent id
        "ff-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01",  # version ff is invalid
        "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01-extra",  # v00 has 4 fields
    ],
)
def test_malformed_traceparent_is_refused_naming_the_value(value: str) -> None:
    with pytest.raises(InvalidTraceHeaderError) as caught:
        parse_traceparent(value)
    assert repr(value) in str(caught.value) or value == ""
    assert isinstance(caught.value, InvalidEventError)


def test_a_later_traceparent_version_may_append_fields() -> None:
    assert parse_traceparent("01-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01-x").to_xray() == XRAY


@pytest.mark.parametrize(
    "value",
    [
        "Parent=53995c3f42cd8ad8;Sampled=1",  # no Root
        "Root=5759e988-bd862e3fe1be46a994272793",  # no version
        "Root=1-5759e988bd862e3fe1be46a994272793",  # no dash after the epoch
        "Root=1-5759e988-bd862e3fe1be46a99427279",  # 23 hex
        f"Root={ROOT};Parent=53995c3f",  # short parent
        f"Root={ROOT};Sampled=yes",
        f"Root={ROOT};junk",
        "Root=1-00000000-000000000000000000000000",
    ],
)
def test_malformed_xray_header_is_refused_naming_the_value(value: str) -> None:
    with pytest.raises(InvalidTraceHeaderError, match="X-Ray trace header"):
        parse_xray_header(value)


def test_explicit_headers_are_checked_with_the_event_named() -> None:
    check_trace_headers({"traceparent": W3C, "X-Amzn-Trace-Id": XRAY, "other": "x"}, event_id="e1")
    with pytest.raises(InvalidTraceHeaderError, match=r"event e1: header 'traceparent'"):
        check_trace_headers({"traceparent": "nope"}, event_id="e1")
    with pytest.raises(InvalidTraceHeaderError, match=r"event e1: header 'X-Amzn-Trace-Id'"):
        check_trace_headers({"x-amzn-trace-id": "Root=1-2-3"}, event_id="e1")


def test_headers_to_aws_trace_header() -> None:
    assert xray_header_from_headers({"traceparent": W3C}) == XRAY
    assert xray_header_from_headers({"X-Amzn-Trace-Id": XRAY, "traceparent": "junk"}) == XRAY
    assert xray_header_from_headers({"x-amzn-trace-id": XRAY}) == XRAY
    # a malformed one is skipped, never raised: the event is already in the outbox
    assert xray_header_from_headers({"X-Amzn-Trace-Id": "junk", "traceparent": W3C}) == XRAY
    assert xray_header_from_headers({"traceparent": "junk"}) is None
    assert xray_header_from_headers({}) is None and xray_header_from_headers(None) is None
    assert xray_header_from_json(json.dumps({"traceparent": W3C, "causation_id": "c"})) == XRAY
    assert xray_header_from_json("{}") is None
    # the stored (canonical) form is taken without a full parse, all-zero ids still refused
    zero_root = "Root=1-00000000-000000000000000000000000;Sampled=1"
    assert xray_header_from_headers({"X-Amzn-Trace-Id": zero_root}) is None
    assert xray_header_from_headers({"X-Amzn-Trace-Id": f"Root={ROOT};Parent={'0' * 16}"}) is None
    assert xray_header_from_json(json.dumps({"X-AMZN-TRACE-ID": XRAY})) == XRAY
    assert trace_id_of(W3C) == trace_id_of(XRAY) == ROOT
    assert trace_id_of("junk") is None and trace_id_of(None) is None


def test_ambient_lambda_header(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_X_AMZN_TRACE_ID", f"{XRAY};Lineage=1:2a0a2a0a:0")
    assert ambient_trace_headers() == {"X-Amzn-Trace-Id": XRAY}
    # the local bridge's per-thread header wins over the process-wide variable
    other = "Root=1-67891233-abcdef012345678912345678;Parent=463ac35c9f6413ad;Sampled=1"
    with lambda_trace_header(other):
        assert current_lambda_trace_header() == other
        assert ambient_trace_headers() == {"X-Amzn-Trace-Id": other}
    assert current_lambda_trace_header() == f"{XRAY};Lineage=1:2a0a2a0a:0"
    monkeypatch.delenv("_X_AMZN_TRACE_ID")
    assert ambient_trace_headers() == {}


def test_a_malformed_ambient_header_is_dropped_with_a_debug_log(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=not-a-trace")
    with caplog.at_level(logging.DEBUG, logger="outbox_relay.tracing"):
        assert ambient_trace_headers() == {}
    assert any("not-a-trace" in r.getMessage() and r.levelno == logging.DEBUG for r in caplog.records)


def test_the_current_opentelemetry_span_comes_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-67891233-abcdef012345678912345678;Sampled=1")
    span = NonRecordingSpan(
        SpanContext(
            trace_id=0x5759E988BD862E3FE1BE46A994272793,
            span_id=0x53995C3F42CD8AD8,
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
    )
    with otel.use_span(span):
        assert ambient_trace_headers() == {"traceparent": W3C}
    # no active span: the Lambda header
    assert ambient_trace_headers() == {
        "X-Amzn-Trace-Id": "Root=1-67891233-abcdef012345678912345678;Sampled=1"
    }


def _row(headers: dict[str, str]) -> ClaimedRow:
    now = datetime.now(UTC)
    return ClaimedRow(
        id=1,
        event_id=uuid.uuid4(),
        aggregate_type="order",
        aggregate_key="7",
        event_type="OrderPlaced",
        payload='{"a": 1}',
        headers=json.dumps(headers),
        created_at=now,
        attempts=0,
        first_sent_at=None,
        claimed_at=now,
    )


class RecordingSqs:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.entries.extend(Entries)
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}


def test_relay_entries_carry_the_aws_trace_header() -> None:
    messages, dead = build_messages(
        [_row({"traceparent": W3C}), _row({"traceparent": "junk"}), _row({})], max_bytes=1 << 20
    )
    assert dead == []  # a bad trace header never kills a row
    assert [m.trace_header for m in messages] == [XRAY, None, None]
    sqs = RecordingSqs()
    SqsFifoPublisher(queue_url="https://sqs.us-east-1.amazonaws.com/1/q.fifo", sqs_client=sqs).publish_batch(
        messages
    )
    assert sqs.entries[0]["MessageSystemAttributes"] == {
        "AWSTraceHeader": {"DataType": "String", "StringValue": XRAY}
    }
    assert "MessageSystemAttributes" not in sqs.entries[1] and "MessageSystemAttributes" not in sqs.entries[2]
    # SQS does not count system attributes in the message size: neither do we
    assert messages[0].size == messages[2].size + len(json.dumps({"traceparent": W3C}).encode()) - 2


def _envelope(headers: dict[str, str]) -> OutboxEnvelope:
    return OutboxEnvelope(
        event_id=uuid.uuid4(),
        event_type="OrderPlaced",
        aggregate_type="order",
        aggregate_key="7",
        occurred_at=datetime.now(UTC),
        payload={},
        headers=headers,
    )


def test_the_dispatcher_prefers_the_records_header_then_the_envelopes() -> None:
    other = "Root=1-67891233-abcdef012345678912345678;Parent=463ac35c9f6413ad;Sampled=0"
    assert execution_trace_header(other, _envelope({"traceparent": W3C})) == other
    assert execution_trace_header("junk", _envelope({"traceparent": W3C})) == XRAY
    assert execution_trace_header(None, _envelope({"X-Amzn-Trace-Id": XRAY})) == XRAY
    assert execution_trace_header(None, _envelope({})) is None
    # a body written by someone else may have any headers: no trace, no failure
    assert (
        execution_trace_header(
            None, OutboxEnvelope.from_json(_envelope({}).to_json().replace('"headers":{}', '"headers":["x"]'))
        )
        is None
    )


class RecordingSfn:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def start_execution(self, **kwargs: Any) -> dict[str, str]:
        self.calls.append(kwargs)
        return {"executionArn": "arn:aws:states:us-east-1:1:execution:S:" + kwargs["name"]}


def test_the_dispatcher_starts_executions_with_the_trace_header() -> None:
    sfn = RecordingSfn()
    arn = "arn:aws:states:us-east-1:1:stateMachine:S"
    dispatcher = Dispatcher(
        sfn_client=sfn,
        routes={
            "OrderPlaced": [Route("S", WorkflowKind.STANDARD, arn), Route("P", WorkflowKind.EXPRESS, arn)]
        },
    )
    dispatcher.dispatch(_envelope({}), trace_header=XRAY)
    dispatcher.dispatch(_envelope({}))
    assert [c.get("traceHeader") for c in sfn.calls] == [XRAY, XRAY, None, None]
