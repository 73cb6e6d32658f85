"""Where moto drops a trace header, carry it the way AWS does (installed by
:func:`saga_outbox.local.lambda_bridge.lambda_bridge` with its other patches, never alone).

What moto 5.2 keeps, read in its source:

* SQS: ``SendMessage`` stores ``MessageSystemAttributes`` and ``ReceiveMessage`` returns
  ``AWSTraceHeader``, but ``SendMessageBatch`` (what the relay calls) never hands the entries'
  system attributes to the backend: the header is lost. AWS keeps it per entry.
* Step Functions: the backend's ``Execution`` has a ``trace_header`` and would report it, but
  the ``StartExecution`` response handler does not read the ``traceHeader`` parameter and the
  ``DescribeExecution`` handler does not return it. AWS does both.
* Lambda tasks: AWS invokes a traced execution's Lambda tasks with the execution's trace
  (``_X_AMZN_TRACE_ID``: the same root, Step Functions' span as parent); moto's interpreter
  passes nothing, so the bridge looks the execution up and runs the handler under that trace
  (:func:`task_trace_header`).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from outbox_relay import InvalidTraceHeaderError
from outbox_relay.tracing import parse_xray_header

__all__ = ["patches", "reset", "task_trace_header"]

_local = threading.local()
_lock = threading.Lock()
#: execution ARN -> the traceHeader it was started with (what DescribeExecution reports)
_execution_traces: dict[str, str] = {}


def task_trace_header() -> str | None:
    """The trace header a Lambda task of the execution running on this thread is invoked
    with: the execution's trace one hop further (a fresh parent span), or None."""
    arn = getattr(_local, "execution_arn", None)
    if arn is None:
        return None
    with _lock:
        header = _execution_traces.get(arn)
    if header is None:
        return None
    try:
        return parse_xray_header(header).child().to_xray()
    except InvalidTraceHeaderError:  # StartExecution takes any ASCII; Lambda needs X-Ray format
        return None


def reset() -> None:
    with _lock:
        _execution_traces.clear()


def patches() -> list[tuple[Any, str, Any]]:
    """(owner, attribute, replacement) for every method wrapped; the bridge applies and
    restores them together with its own."""
    from moto.sqs.models import SQSBackend
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
    from moto.stepfunctions.parser.backend.execution import Execution
    from moto.stepfunctions.responses import StepFunctionResponse

    return [
        (SQSBackend, "send_message_batch", _batch_keeps_system_attributes(SQSBackend.send_message_batch)),
        (SQSBackend, "send_message", _send_takes_batch_attributes(SQSBackend.send_message)),
        (StepFunctionResponse, "start_execution", _start_reads_trace(StepFunctionResponse.start_execution)),
        (Execution, "start", _execution_keeps_trace(Execution.start)),
        (
            StepFunctionResponse,
            "describe_execution",
            _describe_reports_trace(StepFunctionResponse.describe_execution),
        ),
        (
            lambda_eval_utils,
            "execute_lambda_function_integration",
            _task_knows_execution(lambda_eval_utils.execute_lambda_function_integration),
        ),
    ]


def _batch_keeps_system_attributes(original: Callable[..., Any]) -> Callable[..., Any]:
    # moto's batch calls send_message once per entry, in entry order, on this thread: each
    # call takes its entry's system attributes from this queue
    @functools.wraps(original)
    def send_message_batch(self: Any, queue_name: str, entries: dict[str, dict[str, Any]]) -> Any:
        _local.batch_attributes = [entry.get("MessageSystemAttributes") for entry in entries.values()]
        try:
            return original(self, queue_name, entries)
        finally:
            _local.batch_attributes = None

    return send_message_batch


def _send_takes_batch_attributes(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def send_message(self: Any, *args: Any, **kwargs: Any) -> Any:
        pending = getattr(_local, "batch_attributes", None)
        if pending:
            attributes = pending.pop(0)
            if attributes and kwargs.get("system_attributes") is None:
                kwargs["system_attributes"] = attributes
        return original(self, *args, **kwargs)

    return send_message


def _start_reads_trace(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def start_execution(self: Any) -> Any:
        _local.start_trace = self._get_param("traceHeader")
        try:
            return original(self)
        finally:
            _local.start_trace = None

    return start_execution


def _execution_keeps_trace(original: Callable[..., Any]) -> Callable[..., Any]:
    # called inside the backend's start_execution, on the request's thread, before the worker
    # thread runs the first state: the trace is in place before any task reads it
    @functools.wraps(original)
    def start(self: Any) -> Any:
        if self.trace_header is None:
            self.trace_header = getattr(_local, "start_trace", None) or None
        if self.trace_header:
            with _lock:
                _execution_traces[self.exec_arn] = self.trace_header
        return original(self)

    return start


def _describe_reports_trace(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def describe_execution(self: Any) -> Any:
        result = original(self)
        with _lock:
            header = _execution_traces.get(self._get_param("executionArn"))
        body = getattr(result, "result", None)
        if header and isinstance(body, dict):
            body["traceHeader"] = header
        return result

    return describe_execution


def _task_knows_execution(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def execute_lambda_function_integration(env: Any, *args: Any, **kwargs: Any) -> Any:
        previous = getattr(_local, "execution_arn", None)
        try:
            _local.execution_arn = env.states.context_object.context_object_data["Execution"]["Id"]
        except (AttributeError, KeyError, TypeError):
            _local.execution_arn = None
        try:
            return original(env, *args, **kwargs)
        finally:
            _local.execution_arn = previous

    return execute_lambda_function_integration
