"""An execution history as the console's events table and as runs of states (pure, no AWS)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["EventRow", "StateRun", "entered_states", "iso", "parse_history"]


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True, slots=True)
class EventRow:
    """One line of the console's events table."""

    id: int
    type: str
    state: str | None
    timestamp: datetime
    elapsed_ms: int
    input: str | None = None
    output: str | None = None
    error: str | None = None
    cause: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "state": self.state,
            "timestamp": iso(self.timestamp),
            "elapsed_ms": self.elapsed_ms,
            "input": self.input,
            "output": self.output,
            "error": self.error,
            "cause": self.cause,
            "details": dict(self.details),
        }


@dataclass(slots=True)
class StateRun:
    """One entry into a state (a state can run several times in a loop)."""

    name: str
    entered_id: int
    entered_at: datetime
    input: str | None
    exited_id: int | None = None
    exited_at: datetime | None = None
    output: str | None = None
    failed: bool = False
    error: str | None = None
    cause: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "entered_event_id": self.entered_id,
            "exited_event_id": self.exited_id,
            "entered_at": iso(self.entered_at),
            "exited_at": iso(self.exited_at),
            "input": self.input,
            "output": self.output,
            "failed": self.failed,
            "error": self.error,
            "cause": self.cause,
        }


def _details(event: Mapping[str, Any]) -> Mapping[str, Any]:
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, Mapping):
            return value
    return {}


def _is_failure(event_type: str) -> bool:
    return event_type.endswith(("Failed", "TimedOut", "Aborted")) or event_type == "FailStateEntered"


def _is_success(event_type: str) -> bool:
    return event_type.endswith("Succeeded") and event_type not in ("ExecutionSucceeded",)


def parse_history(events: Iterable[Mapping[str, Any]]) -> tuple[list[EventRow], list[StateRun]]:
    """Events-table rows (state attributed by nesting) and state runs, in event order."""
    rows: list[EventRow] = []
    runs: list[StateRun] = []
    open_runs: list[StateRun] = []
    started: datetime | None = None
    for event in sorted(events, key=lambda e: int(e.get("id", 0))):
        event_type = str(event.get("type", ""))
        timestamp: datetime = event["timestamp"]
        started = started or timestamp
        details = _details(event)
        name = details.get("name") if event_type.endswith(("StateEntered", "StateExited")) else None
        if event_type.endswith("StateEntered") and isinstance(name, str):
            run = StateRun(name, int(event["id"]), timestamp, details.get("input"))
            runs.append(run)
            open_runs.append(run)
            if event_type == "FailStateEntered":
                run.failed = True
        current = open_runs[-1] if open_runs else None
        state = name if isinstance(name, str) else (current.name if current else None)
        error, cause = details.get("error"), details.get("cause")
        if current is not None and not event_type.endswith("StateEntered"):
            if _is_failure(event_type):
                current.failed = True
                current.error = error if error is not None else current.error
                current.cause = cause if cause is not None else current.cause
            elif _is_success(event_type):
                current.failed, current.error, current.cause = False, None, None
        if event_type.startswith("Execution") and _is_failure(event_type):
            for run in open_runs:  # the execution ended inside these states
                run.failed = True
                run.error = run.error or error
                run.cause = run.cause or cause
        if event_type.endswith("StateExited") and isinstance(name, str):
            for run in reversed(open_runs):
                if run.name == name:
                    run.exited_id, run.exited_at, run.output = (
                        int(event["id"]),
                        timestamp,
                        details.get("output"),
                    )
                    open_runs.remove(run)
                    break
        raw_input = details.get("input")
        if raw_input is None and "parameters" in details:
            raw_input = details.get("parameters")
        rows.append(
            EventRow(
                id=int(event["id"]),
                type=event_type,
                state=state,
                timestamp=timestamp,
                elapsed_ms=int((timestamp - started).total_seconds() * 1000),
                input=raw_input,
                output=details.get("output"),
                error=error,
                cause=cause,
                details=dict(details),
            )
        )
    return rows, runs


def entered_states(events: Iterable[Mapping[str, Any]]) -> list[str]:
    """Names of the states entered, in event order (what the compiler's ``saga_outcome`` reads)."""
    ordered = sorted(events, key=lambda e: int(e.get("id", 0)))
    return [
        str(_details(e).get("name"))
        for e in ordered
        if str(e.get("type", "")).endswith("StateEntered") and isinstance(_details(e).get("name"), str)
    ]
