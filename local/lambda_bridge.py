"""Route moto's Lambda ``Invoke`` to Python handlers in this process (no Docker).

This is the ONE hook into moto's Lambda backend. moto answers ``Invoke`` through
``LambdaBackend.invoke`` (Docker) or ``LambdaSimpleBackend.invoke`` (``use_docker: False``,
canned answers). Inside :func:`lambda_bridge` both are wrapped: when the invoked function's
name has a handler registered with :func:`bridge_lambda`, the handler runs in-process with
the decoded JSON payload and a :class:`LocalLambdaContext`; every other name falls through
to moto unchanged.

Behaviour mirrors the real service where it matters for Step Functions:

* the function may be addressed by name, full or partial ARN, with or without qualifier;
  it does not have to be created in moto first (if it was, moto resolves the identifier);
* a handler that raises answers with ``FunctionError: Unhandled`` and the payload
  ``{"errorType": <exception class name>, "errorMessage": ..., "stackTrace": [...]}``, so a
  ``lambda:invoke`` task fails with Error = the exception class name and Retry/Catch on
  that name, ``States.TaskFailed`` or ``States.ALL`` apply;
* a result that is not JSON-serializable fails with ``Runtime.MarshalError``;
* ``InvocationType=Event`` runs the handler synchronously and discards its result and errors;
  ``DryRun`` does not run it.

Usage::

    with mock_aws(config={"lambda": {"use_docker": False},
                          "stepfunctions": {"execute_state_machine": True}}):
        with lambda_bridge({"steps": steps_handler}):
            ...  # boto3 Invoke / Step Functions executions call steps_handler
"""

from __future__ import annotations

import functools
import json
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

Handler = Callable[[Any, Any], Any]

_DEFAULT_TIMEOUT_SECONDS = 30
_PATCHED = "invoke"  # the moto method wrapped on LambdaBackend and LambdaSimpleBackend
_lock = threading.RLock()
_handlers: dict[str, Handler] = {}
_active = 0
_originals: list[tuple[type, Callable[..., Any]]] = []


@dataclass
class LocalLambdaContext:
    """The attributes and method of the AWS Lambda Python context object that handlers
    and Powertools (Logger, Tracer, Idempotency) read."""

    function_name: str
    timeout_seconds: int = _DEFAULT_TIMEOUT_SECONDS
    function_version: str = "$LATEST"
    invoked_function_arn: str = ""
    memory_limit_in_mb: int = 128
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = "local"
    identity: Any = None
    client_context: Any = None
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        if not self.invoked_function_arn:
            self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"
        if not self.log_group_name:
            self.log_group_name = f"/aws/lambda/{self.function_name}"
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def bridge_lambda(function_name: str, handler: Handler) -> None:
    """Route invocations of ``function_name`` (the plain name, not an ARN) to ``handler``.
    Takes effect while a :func:`lambda_bridge` context is open; replaces an earlier handler."""
    if not function_name or ":" in function_name:
        raise ValueError(f"function_name must be a plain Lambda function name, got {function_name!r}")
    with _lock:
        _handlers[function_name] = handler


def unbridge_lambda(function_name: str) -> None:
    """Stop routing ``function_name``; later invocations fall through to moto."""
    with _lock:
        _handlers.pop(function_name, None)


@contextmanager
def lambda_bridge(handlers: Mapping[str, Handler] | None = None) -> Iterator[None]:
    """Patch moto's Lambda backends for the duration of the block and register ``handlers``
    (function name -> handler); on exit restore moto and the previous registrations.
    Nesting is allowed. Open it inside ``mock_aws``; the patch is process-wide."""
    global _active
    with _lock:
        saved = dict(_handlers)
        for name, handler in (handlers or {}).items():
            bridge_lambda(name, handler)
        if _active == 0:
            _install()
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                _uninstall()
            _handlers.clear()
            _handlers.update(saved)


def _install() -> None:
    from moto.awslambda.models import LambdaBackend
    from moto.awslambda_simple.models import LambdaSimpleBackend

    for cls in (LambdaBackend, LambdaSimpleBackend):
        original = cls.__dict__[_PATCHED]
        _originals.append((cls, original))
        setattr(cls, _PATCHED, _bridged(original))


def _uninstall() -> None:
    while _originals:
        cls, original = _originals.pop()
        setattr(cls, _PATCHED, original)


def _bridged(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def invoke(
        backend: Any,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: Any,
    ) -> str | bytes | None:
        name, timeout, arn = _resolve(backend, function_name, qualifier)
        with _lock:
            handler = _handlers.get(name)
        if handler is None:
            return original(backend, function_name, qualifier, body, headers, response_headers)
        payload, failed = _run(handler, name, timeout, arn, body, _header(headers, "x-amz-invocation-type"))
        if failed:
            response_headers["x-amz-function-error"] = "Unhandled"
        response_headers["Content-Length"] = str(len(payload))
        return payload

    return invoke


def _resolve(backend: Any, function_name: str, qualifier: str | None) -> tuple[str, int, str]:
    """(plain name, timeout seconds, ARN) of the invoked function."""
    try:
        fn = backend.get_function(function_name, qualifier)
        return fn.function_name, int(fn.timeout or _DEFAULT_TIMEOUT_SECONDS), fn.function_arn
    except Exception:  # not created in moto: address it by name, ARN or partial ARN
        parts = function_name.split(":")
        if parts[0] == "arn" and len(parts) >= 7:
            return parts[6], _DEFAULT_TIMEOUT_SECONDS, function_name
        if len(parts) >= 3 and parts[1] == "function":
            return parts[2], _DEFAULT_TIMEOUT_SECONDS, ""
        return parts[0], _DEFAULT_TIMEOUT_SECONDS, ""


def _run(
    handler: Handler, name: str, timeout: int, arn: str, body: Any, invocation_type: str | None
) -> tuple[bytes, bool]:
    if invocation_type == "DryRun":
        return b"", False
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8")
    try:
        event = json.loads(body) if body else {}
    except (TypeError, ValueError):
        event = body
    context = LocalLambdaContext(function_name=name, timeout_seconds=timeout, invoked_function_arn=arn)
    try:
        result = handler(event, context)
    except Exception as exc:
        error = {
            "errorMessage": str(exc),
            "errorType": type(exc).__name__,
            "requestId": context.aws_request_id,
            "stackTrace": traceback.format_exception(exc)[1:],
        }
        if invocation_type == "Event":  # asynchronous: the caller never sees the error
            return b"", False
        return json.dumps(error).encode(), True
    if invocation_type == "Event":
        return b"", False
    try:
        return json.dumps(result).encode(), False
    except (TypeError, ValueError) as exc:
        error = {"errorMessage": f"Unable to marshal response: {exc}", "errorType": "Runtime.MarshalError"}
        return json.dumps(error).encode(), True


def _header(headers: Any, key: str) -> str | None:
    if not headers:
        return None
    for k, v in dict(headers).items():
        if k.lower() == key:
            return str(v)
    return None
