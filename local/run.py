"""``saga-outbox local run``: one event through the whole local stack, and what it started.

The event is enqueued on the embedded PostgreSQL exactly as an app would (``outbox_relay.enqueue``
in a transaction), then travels relay -> SQS FIFO -> dispatcher -> Step Functions (moto) -> the
app's actions. Events the actions emit (``ctx.enqueue``) follow the same path; the run waits
until the whole causal chain is quiet and reports every execution of it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from outbox_relay import enqueue, outbox_status
from saga_outbox._app import SagaApp
from saga_outbox._errors import Error
from saga_outbox.workflows.compiler import saga_outcome

from .runtime import LocalOptions, LocalRuntime

__all__ = ["ExecutionReport", "LocalRunError", "RunReport", "run_event"]

_FINISHED = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


class LocalRunError(Error):
    """The event could not be run (bad input, or the chain did not finish in time)."""


@dataclass(frozen=True, kw_only=True)
class ExecutionReport:
    workflow: str
    kind: str
    name: str
    event_id: str
    event_type: str
    status: str
    #: "completed" | "compensated" | "compensation_failed" for Standard sagas, None for Express
    outcome: str | None
    #: the states entered, in order
    states: tuple[str, ...]
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "kind": self.kind,
            "name": self.name,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "status": self.status,
            "outcome": self.outcome,
            "states": list(self.states),
            "error": self.error,
        }


@dataclass(frozen=True, kw_only=True)
class RunReport:
    event_id: str
    executions: tuple[ExecutionReport, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        """Every execution ended well: completed, compensated, or an Express run that succeeded."""
        return all(e.status == "SUCCEEDED" for e in self.executions)

    def as_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "seconds": round(self.seconds, 3),
            "executions": [e.as_dict() for e in self.executions],
        }

    def format(self) -> str:
        lines = [f"event {self.event_id}: {len(self.executions)} execution(s) in {self.seconds:.1f}s"]
        for e in self.executions:
            outcome = f" ({e.outcome})" if e.outcome else ""
            lines.append(f"  {e.workflow} [{e.kind}] {e.event_type} -> {e.status}{outcome}")
            lines.append(f"    {' -> '.join(e.states)}")
            if e.error:
                lines.append(f"    error: {e.error}")
        return "\n".join(lines)


def parse_payload(text: str) -> dict[str, Any]:
    """``--payload`` as a JSON object, or a :class:`LocalRunError` naming the problem."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise LocalRunError(f"--payload is not valid JSON ({exc}): {text!r}") from exc
    if not isinstance(value, dict):
        raise LocalRunError(f"--payload must be a JSON object, got {type(value).__name__}: {text!r}")
    return value


def run_event(
    app: SagaApp | str,
    *,
    event_type: str,
    payload: Mapping[str, Any],
    aggregate_key: str | None = None,
    aggregate_type: str | None = None,
    options: LocalOptions | None = None,
    timeout_seconds: float = 120.0,
) -> RunReport:
    """Start a local stack for ``app``, run one event, stop the stack and report."""
    runtime = LocalRuntime(app, options)
    if not runtime.app.workflows_for(event_type):
        routed = sorted({r.event_type for r in runtime.app.routes})
        raise LocalRunError(
            f"app {runtime.app.name!r} routes no workflow for event type {event_type!r}; "
            f"routed event types: {routed}"
        )
    with runtime:
        return run_in(
            runtime,
            event_type=event_type,
            payload=payload,
            aggregate_key=aggregate_key,
            aggregate_type=aggregate_type,
            timeout_seconds=timeout_seconds,
        )


def run_in(
    runtime: LocalRuntime,
    *,
    event_type: str,
    payload: Mapping[str, Any],
    aggregate_key: str | None = None,
    aggregate_type: str | None = None,
    timeout_seconds: float = 120.0,
) -> RunReport:
    """Run one event on a started runtime and wait for its causal chain to finish."""
    assert runtime.engine is not None
    started = time.monotonic()
    with runtime.engine.begin() as conn:
        event_id = enqueue(
            conn,
            aggregate_type=aggregate_type or runtime.app.name,
            aggregate_key=aggregate_key or str(uuid.uuid4()),
            event_type=event_type,
            payload=payload,
            schema=runtime.options.outbox_schema,
        )
    deadline = started + timeout_seconds
    quiet = 0
    inputs: dict[str, dict[str, Any]] = {}  # execution ARN -> its input (never changes)
    while True:
        executions = _chain(runtime, str(event_id), inputs)
        settled = _outbox_settled(runtime) and runtime.queue_depth() == 0
        if settled and executions and all(e["status"] in _FINISHED for e in executions):
            quiet += 1
            if quiet >= 2:  # one more look: a hook's event may just have been committed
                break
        else:
            quiet = 0
        if time.monotonic() > deadline:
            running = [e["name"] for e in executions if e["status"] not in _FINISHED]
            raise LocalRunError(
                f"event {event_id} did not finish within {timeout_seconds:.0f}s "
                f"(executions still running: {running or 'none started'})"
            )
        time.sleep(0.1)
    reports = tuple(_report(runtime, e) for e in sorted(executions, key=lambda e: e["startDate"]))
    return RunReport(event_id=str(event_id), executions=reports, seconds=time.monotonic() - started)


def _outbox_settled(runtime: LocalRuntime) -> bool:
    assert runtime.engine is not None
    return outbox_status(runtime.engine, schema=runtime.options.outbox_schema).pending == 0


def _chain(runtime: LocalRuntime, root: str, inputs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Executions started by ``root`` or by an event whose causation chain leads to it.
    ``inputs`` caches each execution's input across polls: it is described once, not every pass."""
    sfn = runtime.clients["stepfunctions"]
    found: list[dict[str, Any]] = []
    by_event: dict[str, dict[str, Any]] = {}
    for workflow in runtime.app.workflows:
        for execution in runtime.executions(workflow.name):
            arn = execution["executionArn"]
            if arn not in inputs:
                inputs[arn] = json.loads(sfn.describe_execution(executionArn=arn).get("input") or "{}")
            envelope = inputs[arn]
            execution = {
                **execution,
                "workflow": workflow.name,
                "kind": str(workflow.kind),
                "envelope": envelope,
            }
            found.append(execution)
            by_event.setdefault(str(envelope.get("event_id")), envelope)
    members = {root}
    grew = True
    while grew:  # follow causation_id headers down the chain
        grew = False
        for event_id, envelope in by_event.items():
            cause = (envelope.get("headers") or {}).get("causation_id")
            if event_id not in members and cause in members:
                members.add(event_id)
                grew = True
    return [e for e in found if str(e["envelope"].get("event_id")) in members]


def _report(runtime: LocalRuntime, execution: Mapping[str, Any]) -> ExecutionReport:
    sfn = runtime.clients["stepfunctions"]
    events: list[dict[str, Any]] = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution["executionArn"]):
        events.extend(page["events"])
    entered = tuple(
        e["stateEnteredEventDetails"]["name"] for e in events if e["type"].endswith("StateEntered")
    )
    error = None
    for e in events:
        if e["type"] == "ExecutionFailed":
            details = e.get("executionFailedEventDetails", {})
            error = ": ".join(x for x in (details.get("error"), details.get("cause")) if x) or None
    envelope = execution["envelope"]
    standard = execution["kind"] == "STANDARD"
    return ExecutionReport(
        workflow=execution["workflow"],
        kind=execution["kind"],
        name=execution["name"],
        event_id=str(envelope.get("event_id")),
        event_type=str(envelope.get("event_type")),
        status=execution["status"],
        outcome=saga_outcome(entered) if standard else None,
        states=entered,
        error=error,
    )
