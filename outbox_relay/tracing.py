"""Trace headers: read the caller's trace context, check it, convert W3C ↔ X-Ray.

One request keeps one trace id through every hop: :func:`~outbox_relay.enqueue` records the
caller's context in the outbox headers (:func:`ambient_trace_headers`), the relay sends it as
the SQS ``AWSTraceHeader`` system attribute (:func:`xray_header_from_headers`), the dispatcher
passes it to ``StartExecution(traceHeader=...)`` and the steps continue it (see
docs/tracing.md).

Two formats, one trace id:

* W3C ``traceparent`` (OpenTelemetry): ``00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>``;
* X-Ray (Lambda's ``_X_AMZN_TRACE_ID``, SQS, Step Functions):
  ``Root=1-<8 hex>-<24 hex>;Parent=<16 hex>;Sampled=<0|1|?>``. The X-Ray root is the W3C trace
  id with ``1-`` in front and a dash after its first 8 digits (those are the epoch seconds
  X-Ray ids start with; OpenTelemetry's AWS id generator makes W3C ids of that shape).

The headers an event carries use the carrier names the OpenTelemetry propagators read
(``traceparent`` for W3C, ``X-Amzn-Trace-Id`` for X-Ray), so a consumer can ``extract`` them
straight from the envelope's headers.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

from .exceptions import InvalidTraceHeaderError

__all__ = [
    "TRACEPARENT",
    "TRACE_HEADER_KEYS",
    "XRAY_ENV",
    "XRAY_HEADER",
    "TraceContext",
    "ambient_trace_headers",
    "check_trace_headers",
    "current_lambda_trace_header",
    "has_trace_header",
    "lambda_trace_header",
    "parse_trace_header",
    "parse_traceparent",
    "parse_xray_header",
    "trace_context_from_headers",
    "trace_id_of",
    "xray_header_from_headers",
    "xray_header_from_json",
]

log = logging.getLogger("outbox_relay.tracing")

#: the W3C Trace Context header (what OpenTelemetry's default propagator reads and writes)
TRACEPARENT = "traceparent"
#: the X-Ray header (what OpenTelemetry's AWS X-Ray propagator reads and writes)
XRAY_HEADER = "X-Amzn-Trace-Id"
#: the outbox header keys that hold a trace context, in the order the relay prefers them
TRACE_HEADER_KEYS = (XRAY_HEADER, TRACEPARENT)
#: the variable the Lambda runtime sets to the invocation's X-Ray trace header
XRAY_ENV = "_X_AMZN_TRACE_ID"

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_ROOT = re.compile(r"^1-([0-9a-f]{8})-([0-9a-f]{24})$")
_PARENT = re.compile(r"^[0-9a-f]{16}$")
#: the form to_xray writes (and enqueue stores): taken as is, without a full parse, by the relay
_CANONICAL_XRAY = re.compile(
    r"^Root=1-[0-9a-f]{8}-[0-9a-f]{24}(?:;Parent=([0-9a-f]{16}))?(?:;Sampled=[01])?$"
)
_ZERO_ROOT = "Root=1-00000000-000000000000000000000000"

#: the trace header of the Lambda invocation running on this thread, when something other than
#: the Lambda runtime invokes the handler (the local runtime's bridge, see
#: saga_outbox.local.lambda_bridge); None means "read _X_AMZN_TRACE_ID as on AWS"
_LAMBDA_TRACE: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "saga_outbox_lambda_trace_header", default=None
)


@dataclass(frozen=True, slots=True)
class TraceContext:
    """One position in a trace: the trace id, the caller's span (``parent_id``) and whether the
    trace is sampled (``None``: not decided yet, X-Ray's ``Sampled=?``)."""

    trace_id: str  #: 32 lower-case hex digits, not all zero
    parent_id: str | None = None  #: 16 lower-case hex digits, not all zero
    sampled: bool | None = None

    @property
    def xray_trace_id(self) -> str:
        """The id X-Ray, Step Functions and the console show: ``1-<8 hex>-<24 hex>``."""
        return f"1-{self.trace_id[:8]}-{self.trace_id[8:]}"

    def to_xray(self) -> str:
        """``Root=...;Parent=...;Sampled=...``: the format SQS ``AWSTraceHeader``, Step Functions'
        ``traceHeader`` and Lambda's ``_X_AMZN_TRACE_ID`` take."""
        parts = [f"Root={self.xray_trace_id}"]
        if self.parent_id is not None:
            parts.append(f"Parent={self.parent_id}")
        if self.sampled is not None:
            parts.append(f"Sampled={int(self.sampled)}")
        return ";".join(parts)

    def to_traceparent(self) -> str:
        """The W3C form; a context without a parent span gets a fresh one (W3C requires it)."""
        flags = "01" if self.sampled else "00"
        return f"00-{self.trace_id}-{self.parent_id or _span_id()}-{flags}"

    def child(self) -> TraceContext:
        """The same trace, one hop further: a fresh parent span id (what a service that
        continues the trace, e.g. Step Functions invoking a Lambda, hands on)."""
        return TraceContext(trace_id=self.trace_id, parent_id=_span_id(), sampled=self.sampled)


def _span_id() -> str:
    while True:
        span = secrets.token_hex(8)
        if span != "0" * 16:
            return span


def parse_traceparent(value: str) -> TraceContext:
    """A W3C ``traceparent``; :class:`InvalidTraceHeaderError` naming the value otherwise.

    Follows the W3C parsing rules: version ``ff`` is invalid, version ``00`` has exactly four
    fields, a later version may append fields (ignored); all-zero ids are invalid."""
    if not isinstance(value, str):
        raise InvalidTraceHeaderError(f"traceparent must be a string, got {type(value).__name__}")
    match = _TRACEPARENT.match(value.strip())
    if match is None:
        raise InvalidTraceHeaderError(
            f"traceparent {value!r} is not '00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>'"
        )
    version, trace_id, parent_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        raise InvalidTraceHeaderError(f"traceparent {value!r} has an invalid version or extra fields")
    if trace_id == "0" * 32 or parent_id == "0" * 16:
        raise InvalidTraceHeaderError(f"traceparent {value!r} has an all-zero trace or parent id")
    return TraceContext(trace_id=trace_id, parent_id=parent_id, sampled=bool(int(flags, 16) & 1))


def parse_xray_header(value: str) -> TraceContext:
    """An X-Ray trace header (``Root=1-...;Parent=...;Sampled=...``, fields in any order; other
    fields such as Lambda's ``Lineage`` are dropped); :class:`InvalidTraceHeaderError` otherwise."""
    if not isinstance(value, str):
        raise InvalidTraceHeaderError(f"X-Ray trace header must be a string, got {type(value).__name__}")
    fields: dict[str, str] = {}
    for part in value.strip().split(";"):
        key, sep, item = part.strip().partition("=")
        if not sep or not key:
            if part.strip():
                raise InvalidTraceHeaderError(
                    f"X-Ray trace header {value!r}: field {part!r} is not key=value"
                )
            continue
        fields[key] = item
    root = _ROOT.match(fields.get("Root", ""))
    if root is None:
        raise InvalidTraceHeaderError(
            f"X-Ray trace header {value!r} has no valid Root=1-<8 hex>-<24 hex> (got {fields.get('Root')!r})"
        )
    trace_id = root.group(1) + root.group(2)
    parent = fields.get("Parent")
    if parent is not None and (not _PARENT.match(parent) or parent == "0" * 16):
        raise InvalidTraceHeaderError(f"X-Ray trace header {value!r}: Parent {parent!r} is not 16 hex digits")
    sampled_text = fields.get("Sampled")
    if sampled_text not in (None, "0", "1", "?"):
        raise InvalidTraceHeaderError(
            f"X-Ray trace header {value!r}: Sampled {sampled_text!r} is not 0, 1 or ?"
        )
    if trace_id == "0" * 32:
        raise InvalidTraceHeaderError(f"X-Ray trace header {value!r} has an all-zero trace id")
    sampled = None if sampled_text in (None, "?") else sampled_text == "1"
    return TraceContext(trace_id=trace_id, parent_id=parent, sampled=sampled)


def parse_trace_header(value: str) -> TraceContext:
    """Either format, told apart by shape (an X-Ray header has ``Root=``)."""
    if isinstance(value, str) and "Root=" in value:
        return parse_xray_header(value)
    return parse_traceparent(value)


def _header(headers: Mapping[str, Any], key: str) -> Any:
    # carriers are case-insensitive (HTTP header semantics); the common spellings first
    for candidate in (key, key.lower()):
        if candidate in headers:
            return headers[candidate]
    lowered = key.lower()
    for name, value in headers.items():
        if isinstance(name, str) and name.lower() == lowered:
            return value
    return None


def has_trace_header(headers: Mapping[str, Any]) -> bool:
    """Whether ``headers`` already name a trace context (the caller's choice wins)."""
    return any(_header(headers, key) is not None for key in TRACE_HEADER_KEYS)


def check_trace_headers(headers: Mapping[str, Any], *, event_id: str) -> None:
    """Refuse an explicitly passed trace header that SQS and Step Functions would not take,
    naming the event and the value (raised before any SQL)."""
    for key in TRACE_HEADER_KEYS:
        value = _header(headers, key)
        if value is None:
            continue
        try:
            parse_xray_header(value) if key == XRAY_HEADER else parse_traceparent(value)
        except InvalidTraceHeaderError as exc:
            raise InvalidTraceHeaderError(f"event {event_id}: header {key!r}: {exc}") from None


def trace_context_from_headers(headers: Mapping[str, Any] | None) -> TraceContext | None:
    """The trace context an event's headers carry, or None (absent or malformed: a trace header
    is never a reason to refuse or fail an event once it is in the outbox)."""
    if not headers or not isinstance(headers, Mapping):  # a foreign body may carry anything
        return None
    for key in TRACE_HEADER_KEYS:
        value = _header(headers, key)
        if value is None:
            continue
        try:
            return parse_xray_header(value) if key == XRAY_HEADER else parse_traceparent(value)
        except InvalidTraceHeaderError as exc:
            log.debug("ignoring a malformed trace header: %s", exc)
    return None


def xray_header_from_headers(headers: Mapping[str, Any] | None) -> str | None:
    """The ``AWSTraceHeader`` to send for an event with these headers (X-Ray format), or None."""
    if headers and isinstance(headers, Mapping):
        value = _header(headers, XRAY_HEADER)
        if isinstance(value, str) and (canonical := _canonical_xray(value)) is not None:
            return canonical
    context = trace_context_from_headers(headers)
    return None if context is None else context.to_xray()


def _canonical_xray(value: str) -> str | None:
    match = _CANONICAL_XRAY.match(value)
    if match is None or value.startswith(_ZERO_ROOT) or match.group(1) == "0" * 16:
        return None
    return value


def xray_header_from_json(headers_json: str | None) -> str | None:
    """:func:`xray_header_from_headers` for headers as the JSON text the relay claims."""
    # both key names contain "race" (any case but the first letter): most rows skip the parse
    if not headers_json or "race" not in headers_json.lower():
        return None
    try:
        headers = json.loads(headers_json)
    except ValueError:
        return None
    return xray_header_from_headers(headers) if isinstance(headers, dict) else None


def trace_id_of(header: str | None) -> str | None:
    """The X-Ray trace id (``1-...``) of a trace header in either format, or None: the
    ``trace_id`` every hop logs."""
    if not header:
        return None
    try:
        return parse_trace_header(header).xray_trace_id
    except InvalidTraceHeaderError:
        return None


def current_lambda_trace_header() -> str | None:
    """The X-Ray trace header of the Lambda invocation this code runs in: what the local
    bridge set for this thread (:func:`lambda_trace_header`), else ``_X_AMZN_TRACE_ID``, which
    the Lambda runtime sets per invocation (read when called, never at import)."""
    return _LAMBDA_TRACE.get() or os.environ.get(XRAY_ENV) or None


@contextmanager
def lambda_trace_header(header: str | None) -> Iterator[None]:
    """Run a block as a Lambda invocation whose trace header is ``header``.

    For whatever invokes handlers in place of the Lambda runtime (the local runtime's bridge).
    On AWS the runtime sets ``_X_AMZN_TRACE_ID``; a process running many invocations at once
    on threads cannot, since the environment is shared by every thread: a context variable is
    per thread (and per task)."""
    token = _LAMBDA_TRACE.set(header)
    try:
        yield
    finally:
        _LAMBDA_TRACE.reset(token)


@cache
def _opentelemetry_trace() -> Any:
    """OpenTelemetry's ``trace`` module, or None when it is not installed (looked up once: a
    failed import is slow, and enqueue asks on every call)."""
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    return trace


def _opentelemetry_traceparent() -> str | None:
    trace = _opentelemetry_trace()
    if trace is None:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags) & 0xFF:02x}"


def ambient_trace_headers() -> dict[str, str]:
    """The caller's trace context as outbox headers: the current OpenTelemetry span when
    OpenTelemetry is installed and a span is active (``traceparent``), else the Lambda
    invocation's X-Ray header (``X-Amzn-Trace-Id``), else nothing.

    Never raises: a malformed ambient header is dropped with a debug log, since the caller did
    not pass it and an event must not fail for it."""
    try:
        traceparent = _opentelemetry_traceparent()
    except Exception as exc:  # a broken tracing setup must not fail the caller's enqueue
        log.debug("ignoring the OpenTelemetry context: %s", exc)
        traceparent = None
    if traceparent is not None:
        try:
            return {TRACEPARENT: parse_traceparent(traceparent).to_traceparent()}
        except InvalidTraceHeaderError as exc:
            log.debug("ignoring the OpenTelemetry context: %s", exc)
    header = current_lambda_trace_header()
    if header:
        try:
            return {XRAY_HEADER: parse_xray_header(header).to_xray()}
        except InvalidTraceHeaderError as exc:
            log.debug("ignoring %s: %s", XRAY_ENV, exc)
    return {}
