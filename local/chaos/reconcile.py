"""The reconciler step of a chaos run, and the dispatcher fault it exists for.

After the workload has drained, one :class:`~saga_outbox.ops.reconcile.Reconciler` pass runs
against the local Step Functions and the run's outbox, as the construct's scheduled function
would on AWS; the harness then waits for the executions it started and the checker counts the
sagas after the repair. What it repaired is reported, never hidden: a repaired dispatch is not
a failure of the run (a dispatcher may legitimately lose a message its DLQ holds), but the
report says which events needed it. Loss on the relay's side is unaffected: an event that
never reached the dispatcher still counts as lost (``never_received``), repaired or not.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from saga_outbox._app import SagaApp

from .history import History

__all__ = ["DroppedDispatches", "reconcile_pass"]

#: at most this many repaired dispatches are listed by name in the report
_LISTED = 20


class DroppedDispatches:
    """The dispatcher fault ``lost_dispatches``: the first ``budget`` saga-starting events it
    receives are acknowledged without starting their execution (a dispatcher bug, a DLQ purged
    by hand), and every later delivery of those events is dropped too, so the loss is real
    until the reconciler repairs it. Called per SQS record; thread-safe."""

    def __init__(self, budget: int, *, event_types: Iterable[str], history: History) -> None:
        self._budget = budget
        self._types = frozenset(event_types)
        self._history = history
        self._chosen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, record: Mapping[str, Any]) -> bool:
        try:
            body = json.loads(record["body"])
            event_id, event_type = str(body["event_id"]), str(body["event_type"])
        except (KeyError, TypeError, ValueError):
            return False
        with self._lock:
            if event_id in self._chosen:
                return True
            if self._budget <= 0 or event_type not in self._types:
                return False
            self._budget -= 1
            self._chosen.add(event_id)
        self._history.count("dispatches_dropped")
        return True

    @property
    def dropped(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._chosen)


def reconcile_pass(
    app: SagaApp,
    *,
    engine: sa.Engine,
    sfn_client: Any,
    state_machine_arns: Mapping[str, str],
    outbox_schema: str,
) -> dict[str, Any]:
    """One pass over every event of the run (no minimum age: the run has settled, nothing is
    still in flight), as the checker's ``reconciler`` object."""
    from saga_outbox.ops._reconcile_findings import STARTED
    from saga_outbox.ops.reconcile import Reconciler

    report = Reconciler(
        app,
        engine=engine,
        sfn_client=sfn_client,
        state_machine_arns=state_machine_arns,
        schema=outbox_schema,
        older_than_minutes=0.0,
        since_hours=24.0,
    ).run()
    counts = report.counts
    repaired = [d for d in report.lost_dispatches if d.action == STARTED]
    return {
        "lost_dispatches_repaired": counts["started"],
        "lost_dispatches_found": counts["lost_dispatches"],
        "start_failures": counts["start_failures"],
        "stuck": counts["stuck"],
        "compensation_failed": counts["compensation_failed"],
        "failed": counts["failed"],
        "events_checked": report.events_checked,
        "repaired": [
            {"workflow": d.workflow, "event_id": d.event_id, "execution_name": d.execution_name}
            for d in repaired[:_LISTED]
        ],
        "failed_examples": [
            f"{x.workflow} {x.execution_name}: {x.status} {x.error}" for x in report.failed[:5]
        ],
    }
