"""What one reconciler run found, as plain frozen records with ``as_dict`` (the ``--json`` shape)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "METRICS",
    "CompensationFailedSaga",
    "FailedExecution",
    "LostDispatch",
    "ReconcileReport",
    "Skipped",
    "StuckExecution",
]

#: finding type -> metric name (one count per run, zeros included: an alarm on a metric that
#: is only emitted when non-zero sees "missing data" on good runs and cannot tell them from a
#: reconciler that stopped running)
METRICS = {
    "lost_dispatches": "ReconcileLostDispatches",
    "started": "ReconcileExecutionsStarted",
    "start_failures": "ReconcileStartFailures",
    "stuck": "ReconcileStuckExecutions",
    "compensation_failed": "ReconcileCompensationFailed",
    "failed": "ReconcileFailedExecutions",
}

#: what the reconciler did about a lost dispatch
STARTED = "started"
ALREADY_EXISTED = "already_existed"  # a dispatcher or another reconciler started it meanwhile
WOULD_START = "would_start"  # --dry-run
START_FAILED = "start_failed"


def short_cause(cause: str | None) -> str | None:
    """A Lambda error's ``errorMessage`` instead of the whole JSON with its stack trace (the
    report is read by people and alarms; ``saga-outbox executions show`` keeps the full cause)."""
    try:
        data = json.loads(cause or "")
    except ValueError:
        return cause
    if isinstance(data, dict) and isinstance(data.get("errorMessage"), str):
        return data["errorMessage"]
    return cause


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _plain(record: Any) -> dict[str, Any]:
    return {k: _iso(v) if isinstance(v, datetime) else v for k, v in asdict(record).items()}


@dataclass(frozen=True, kw_only=True)
class LostDispatch:
    """A published event whose routed Standard execution did not exist."""

    workflow: str
    event_id: str
    event_type: str
    published_at: datetime
    archived: bool
    execution_name: str
    execution_arn: str
    action: str
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass(frozen=True, kw_only=True)
class StuckExecution:
    """A Standard execution still RUNNING past its workflow's deadline."""

    workflow: str
    execution_name: str
    execution_arn: str
    started_at: datetime
    running_seconds: float
    deadline_seconds: float
    #: the state it was last seen entering (a task-token step waits here)
    current_state: str | None

    def as_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass(frozen=True, kw_only=True)
class CompensationFailedSaga:
    """A saga that ended in ``CompensationFailed``: what was undone and what was not."""

    workflow: str
    execution_name: str
    execution_arn: str
    event_id: str | None
    started_at: datetime | None
    stopped_at: datetime | None
    #: the states that failed, as the Fail state's cause names them: {state, error, cause}
    failed: tuple[dict[str, Any], ...]
    #: steps whose compensation ran and succeeded
    undone: tuple[str, ...]
    #: steps that may have taken effect and were not undone: {step, reason}
    not_undone: tuple[dict[str, Any], ...]

    def as_dict(self) -> dict[str, Any]:
        return _plain(self) | {
            "failed": list(self.failed),
            "undone": list(self.undone),
            "not_undone": list(self.not_undone),
        }


@dataclass(frozen=True, kw_only=True)
class FailedExecution:
    """A FAILED, TIMED_OUT or ABORTED execution in the window (other than CompensationFailed)."""

    workflow: str
    kind: str
    execution_name: str
    execution_arn: str
    status: str
    started_at: datetime | None
    stopped_at: datetime | None
    error: str | None
    cause: str | None

    def as_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass(frozen=True, kw_only=True)
class Skipped:
    """A check the service would not answer (ListExecutions does not serve Express machines)."""

    workflow: str
    check: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass(frozen=True, kw_only=True)
class ReconcileReport:
    now: datetime
    since: datetime
    until: datetime
    dry_run: bool
    events_checked: int
    lost_dispatches: tuple[LostDispatch, ...] = ()
    stuck: tuple[StuckExecution, ...] = ()
    compensation_failed: tuple[CompensationFailedSaga, ...] = ()
    failed: tuple[FailedExecution, ...] = ()
    skipped: tuple[Skipped, ...] = field(default=())

    @property
    def counts(self) -> dict[str, int]:
        actions = [d.action for d in self.lost_dispatches]
        return {
            "lost_dispatches": len(self.lost_dispatches),
            "started": actions.count(STARTED),
            "start_failures": actions.count(START_FAILED),
            "stuck": len(self.stuck),
            "compensation_failed": len(self.compensation_failed),
            "failed": len(self.failed),
        }

    @property
    def metrics(self) -> dict[str, int]:
        return {METRICS[k]: v for k, v in self.counts.items()}

    def as_dict(self) -> dict[str, Any]:
        return {
            "now": _iso(self.now),
            "window": {"since": _iso(self.since), "until": _iso(self.until)},
            "dry_run": self.dry_run,
            "events_checked": self.events_checked,
            "counts": self.counts,
            "metrics": self.metrics,
            "lost_dispatches": [d.as_dict() for d in self.lost_dispatches],
            "stuck": [s.as_dict() for s in self.stuck],
            "compensation_failed": [c.as_dict() for c in self.compensation_failed],
            "failed": [f.as_dict() for f in self.failed],
            "skipped": [s.as_dict() for s in self.skipped],
        }
