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
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders

from saga_outbox._app import SagaApp

from .history import History

__all__ = ["DroppedDispatches", "reconcile_pass"]

#: at most this many repaired dispatches are listed by name in the report
_LISTED = 20


class DroppedDispatches:
    """The dispatcher fault ``lost_dispatches``: for the first ``budget`` saga-starting events,
    the dispatcher's Standard ``StartExecution`` answers success without starting anything (a
    dispatcher bug, an execution deleted by hand), every time the event comes back, so the
    message is acknowledged and the loss is real until the reconciler repairs it. Its Express
    starts go through: the reconciler does not repair Express (their dispatches are replayed),
    and the domain audit would count a lost projection.

    Only calls made inside :meth:`wrap`'s handler are touched (a thread-local flag), so the
    reconciler's own starts on the same client are not."""

    def __init__(
        self, budget: int, *, standard_arns: Iterable[str], sfn_client: Any, history: History
    ) -> None:
        self._budget = budget
        self._arns = frozenset(standard_arns)
        self._history = history
        self._chosen: set[str] = set()
        self._lock = threading.Lock()
        self._local = threading.local()
        events = sfn_client.meta.events
        events.register("before-parameter-build.sfn.StartExecution", self._choose)
        events.register("before-call.sfn.StartExecution", self._swallow)

    def wrap(self, handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        def dispatch(event: Any, context: Any) -> Any:
            self._local.dispatching = True
            try:
                return handler(event, context)
            finally:
                self._local.dispatching = False

        return dispatch

    def _choose(self, params: dict[str, Any], **_kw: Any) -> None:
        self._local.swallow = None
        if not getattr(self._local, "dispatching", False) or params.get("stateMachineArn") not in self._arns:
            return
        try:
            event_id = str(json.loads(params["input"])["event_id"])
        except (KeyError, TypeError, ValueError):
            return
        with self._lock:
            if event_id not in self._chosen:
                if self._budget <= 0:
                    return
                self._budget -= 1
                self._chosen.add(event_id)
                self._history.count("dispatches_dropped")
        arn = str(params["stateMachineArn"]).replace(":stateMachine:", ":execution:", 1)
        self._local.swallow = f"{arn}:{params['name']}"

    def _swallow(self, **_kw: Any) -> tuple[Any, dict[str, Any]] | None:
        arn, self._local.swallow = getattr(self._local, "swallow", None), None
        if arn is None:
            return None
        # what StartExecution answers, without the execution
        return AWSResponse("https://states.local/", 200, HTTPHeaders(), None), {
            "executionArn": arn,
            "startDate": datetime.now(UTC),
        }

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
