"""Route moto's Lambda ``Invoke`` to Python handlers in this process (no Docker).

This is the ONE module that hooks into moto (everything it patches is installed and restored
together by :func:`lambda_bridge`). moto answers ``Invoke`` through
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

Trace headers go where AWS takes them (see :mod:`saga_outbox.local._moto_tracing`): SQS
``SendMessageBatch`` keeps each entry's ``AWSTraceHeader``, ``StartExecution`` keeps its
``traceHeader`` and ``DescribeExecution`` reports it, and a bridged handler invoked by an
execution's Lambda task runs under that execution's trace (what the Lambda runtime puts in
``_X_AMZN_TRACE_ID``; here per thread, see :func:`outbox_relay.tracing.lambda_trace_header`).

Two more hooks only remove repeated work from moto's Step Functions interpreter, without
changing what it does (measured in docs/performance.md, "Local runtime and cold start"):

* ``AmazonStateLanguageParser.parse``: moto lexes and parses the whole ASL definition with
  ANTLR on every ``StartExecution`` (~0.6 s of CPU for the example's 10 KB saga, then ~0.1 s
  to build the evaluation components from the tree: the largest share of a local run). The
  parse tree is kept per definition, and so is the program built from it when the definition
  has no Map or Parallel state (moto evaluates the other components against a per-execution
  ``Environment`` and keeps no state on them); Map/Parallel programs are rebuilt per run.
* the boto3 client a ``lambda:invoke`` Task builds for every call (``boto_client_for``, ~10 ms
  each, the same arguments every time) is kept per region; boto3 clients are thread-safe.
* a ``lambda:invoke`` Task whose function is bridged calls the handler directly (see
  :func:`_direct_task_invoke`) instead of going through botocore and moto's Lambda responses;
  ``Invoke`` from any boto3 client still takes the backend path above.

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

from outbox_relay.tracing import lambda_trace_header

from . import _moto_tracing

Handler = Callable[[Any, Any], Any]

_DEFAULT_TIMEOUT_SECONDS = 30
_ACCOUNT = "123456789012"  # moto's default account, for functions addressed by bare name
_PATCHED = "invoke"  # the moto method wrapped on LambdaBackend and LambdaSimpleBackend
_lock = threading.RLock()
_handlers: dict[str, Handler] = {}
_active = 0
_originals: list[tuple[Any, str, Any]] = []  # (owner, attribute, original value)
#: ASL definitions whose parse tree is kept; a local app has a handful of workflows
_TREE_CACHE_SIZE = 64


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
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    for cls in (LambdaBackend, LambdaSimpleBackend):
        _patch(cls, _PATCHED, _bridged(cls.__dict__[_PATCHED]))
    _patch(AmazonStateLanguageParser, "parse", staticmethod(_cached_parse()))
    _patch(lambda_eval_utils, "boto_client_for", _cached_clients(lambda_eval_utils.boto_client_for))
    _patch(lambda_eval_utils, "_invoke_lambda_function", _direct_task_invoke(lambda_eval_utils))
    for owner, attribute, value in _moto_tracing.patches():
        _patch(owner, attribute, value)


def _patch(owner: Any, attribute: str, value: Any) -> None:
    _originals.append((owner, attribute, owner.__dict__[attribute]))
    setattr(owner, attribute, value)


def _uninstall() -> None:
    while _originals:
        owner, attribute, original = _originals.pop()
        setattr(owner, attribute, original)
    _moto_tracing.reset()


def _cached_parse() -> Callable[[str], Any]:
    """``AmazonStateLanguageParser.parse`` with the ANTLR parse tree cached per definition.

    Mirrors moto's own ``parse``: syntax errors raise ``ASLParserException`` (and are not
    cached: ``lru_cache`` keeps results only), then a fresh ``Preprocessor`` builds the
    evaluation components from the tree."""
    from antlr4 import CommonTokenStream, InputStream
    from moto.stepfunctions.parser.asl.antlr.runtime.ASLLexer import ASLLexer
    from moto.stepfunctions.parser.asl.antlr.runtime.ASLParser import ASLParser
    from moto.stepfunctions.parser.asl.parse.asl_parser import ASLParserException, SyntaxErrorListener
    from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor

    @functools.lru_cache(maxsize=_TREE_CACHE_SIZE)
    def tree_of(definition: str) -> Any:
        listener = SyntaxErrorListener()
        parser = ASLParser(CommonTokenStream(ASLLexer(InputStream(definition))))
        parser.removeErrorListeners()
        parser.addErrorListener(listener)
        tree = parser.state_machine()
        if listener.errors:
            raise ASLParserException(errors=listener.errors)
        return tree

    @functools.lru_cache(maxsize=_TREE_CACHE_SIZE)
    def shared_program(definition: str) -> Any:
        program = Preprocessor().visit(tree_of(definition))
        _assign_heap_keys(program)
        return program

    def parse(definition: str) -> tuple[Any, Any]:
        tree = tree_of(definition)
        if _stateless_states(definition):
            return shared_program(definition), tree
        return Preprocessor().visit(tree), tree

    return parse


#: state types whose evaluation components keep per-run state on themselves (worker pools,
#: map-run records): their programs are rebuilt for every execution
_STATEFUL_STATE_TYPES = frozenset({"Map", "Parallel"})


def _stateless_states(definition: str) -> bool:
    """True if no state of the definition is a Map or Parallel state. moto's other components
    are an immutable tree evaluated against a per-execution ``Environment`` (stack, heap,
    context object), so executions can share one program."""
    try:
        states = json.loads(definition).get("States", {})
    except (TypeError, ValueError, AttributeError):
        return False
    return isinstance(states, dict) and all(
        isinstance(s, dict) and s.get("Type") not in _STATEFUL_STATE_TYPES for s in states.values()
    )


def _assign_heap_keys(program: Any) -> None:
    """Give every component its heap key before the program is shared. ``EvalComponent``
    draws the key lazily on first use; two executions racing on that first use could each
    see a different key (the retry attempt counter lives under it)."""
    from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent

    seen: set[int] = set()
    todo: list[Any] = [program]
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, EvalComponent):
            _ = obj.heap_key
        if isinstance(obj, dict):
            todo.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            todo.extend(obj)
        elif hasattr(obj, "__dict__") and type(obj).__module__.startswith("moto.stepfunctions"):
            todo.extend(vars(obj).values())


def _direct_task_invoke(module: Any) -> Callable[..., Any]:
    """moto's ``lambda:invoke`` Task call, answered by a bridged handler without the round trip
    through botocore and moto's Lambda responses (serialize, route, parse: ~5% of a demo's CPU).

    The handler runs exactly as :func:`_bridged` runs it (same :func:`_resolve`, same error
    payloads) and the answer has the shape moto's own ``_invoke_lambda_function`` returns
    (``StatusCode``, ``ExecutedVersion``, the decoded ``Payload``, ``FunctionError``). Anything
    else (an unbridged function, a qualifier, an asynchronous or dry-run invocation) takes
    moto's own path."""
    original = module._invoke_lambda_function

    @functools.wraps(original)
    def _invoke_lambda_function(parameters: dict[str, Any], region: str, state_credentials: Any) -> Any:
        function_name = str(parameters.get("FunctionName", ""))
        simple = parameters.get("InvocationType", "RequestResponse") == "RequestResponse"
        if not simple or parameters.get("Qualifier"):
            return original(parameters=parameters, region=region, state_credentials=state_credentials)
        from moto.awslambda.utils import get_backend

        arn_parts = function_name.split(":")
        account = arn_parts[4] if function_name.startswith("arn:") and len(arn_parts) > 4 else _ACCOUNT
        name, timeout, arn = _resolve(get_backend(account, region), function_name, None)
        with _lock:
            handler = _handlers.get(name)
        if handler is None:
            return original(parameters=parameters, region=region, state_credentials=state_credentials)
        payload, failed = _run(handler, name, timeout, arn, parameters.get("Payload"), None)
        try:
            decoded: Any = json.loads(payload)
        except ValueError:
            decoded = payload.decode("utf-8")
        response: dict[str, Any] = {"StatusCode": 200, "ExecutedVersion": "$LATEST", "Payload": decoded}
        if failed:
            response["FunctionError"] = "Unhandled"
        return response

    return _invoke_lambda_function


def _cached_clients(original: Callable[..., Any]) -> Callable[..., Any]:
    """``boto_client_for`` keeping one client per (region, service). moto 5.2 builds every
    client with the same fixed keys and config, so ``state_credentials`` changes nothing."""
    clients: dict[tuple[str, str], Any] = {}
    _client_lock = threading.Lock()

    @functools.wraps(original)
    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        key = (region, service)
        client = clients.get(key)
        if client is None:
            # created under the lock: the first burst of executions would otherwise each build
            # its own client at once (the stampede the cache is there to avoid)
            with _client_lock:
                client = clients.get(key)
                if client is None:
                    client = original(region=region, service=service, state_credentials=state_credentials)
                    clients[key] = client
        return client

    return boto_client_for


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
        # what the Lambda runtime puts in _X_AMZN_TRACE_ID on AWS, per thread here
        with lambda_trace_header(_moto_tracing.task_trace_header()):
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
