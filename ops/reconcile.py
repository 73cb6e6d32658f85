"""Find the work that fell between the outbox, SQS and Step Functions, and repair what is safe.

* **Lost dispatches**: an event published more than ``older_than_minutes`` ago (live or
  archived row, within ``since_hours``) whose routed Standard execution does not exist (the
  message expired, sat in the DLQ, or the dispatcher dropped it) is started with the
  dispatcher's deterministic name and the relay's exact body. Step Functions deduplicates by
  name for 90 days, so a dispatcher or another reconciler racing us gets the same execution or
  ``ExecutionAlreadyExists``: running this at any time, in parallel, is safe.
* **Stuck**: Standard executions still RUNNING past their workflow's deadline.
* **CompensationFailed**: sagas that ended neither completed nor undone, with what was undone.
* **Failed**: other FAILED / TIMED_OUT / ABORTED executions started in the window.

Express executions are not reconciled: their names are random (the event id travels in the
input) and Express steps are idempotent, so a lost Express dispatch is replayed, not repaired;
on AWS, ListExecutions does not serve Express machines at all (their failures are in the
CloudWatch log group and the ``ExecutionsFailed`` metric), which the report says as "skipped".
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from botocore.exceptions import BotoCoreError, ClientError

from outbox_relay.metrics import MetricsSink, NullMetrics
from outbox_relay.schema import DEFAULT_SCHEMA, check_schema
from saga_outbox._app import SagaApp
from saga_outbox.workflows.compiler import COMPENSATION_FAILED
from saga_outbox.workflows.definition import Integration, Step, Workflow, WorkflowKind
from saga_outbox.workflows.naming import execution_name
from saga_outbox.workflows.timeouts import function_timeout_seconds, task_timeout_seconds

from . import _reconcile_findings as f
from ._reconcile_arns import ReconcileAWSError, ReconcileError, ReconcileInputError, aws_error
from ._reconcile_outbox import PublishedEvent, published_events
from ._reconcile_sagas import compensation_report

__all__ = [
    "ReconcileAWSError",
    "ReconcileError",
    "ReconcileInputError",
    "Reconciler",
    "deadline_seconds",
]

#: The event's timestamps come from PostgreSQL's clock, the executions' from AWS's: list
#: executions a little before the window opens so that skew never makes one look missing.
_CLOCK_SKEW = timedelta(minutes=15)
_FAILED_STATUSES = ("FAILED", "TIMED_OUT", "ABORTED")
_AWS_ERRORS = (ClientError, BotoCoreError)
#: what AWS answers ListExecutions on an Express machine
_UNSUPPORTED = frozenset({"StateMachineTypeNotSupported", "ValidationException"})
_EXPRESS_NOT_LISTED = (
    "not listed: ListExecutions does not serve Express state machines on AWS "
    "(their failures raise the ExecutionsFailed alarm and are in the log group)"
)


def _code(exc: Exception) -> str:
    return str(exc.response.get("Error", {}).get("Code", "")) if isinstance(exc, ClientError) else ""


def _execution_arn(state_machine_arn: str, name: str) -> str:
    return state_machine_arn.replace(":stateMachine:", ":execution:", 1) + f":{name}"


def deadline_seconds(app: SagaApp, workflow: Workflow, *, margin_seconds: float = 300.0) -> float:
    """How long a run of ``workflow`` may take before it counts as stuck.

    :meth:`Workflow.worst_case_seconds` counted with the Task timeouts the compiler emits (the
    function's timeout plus the Init margin, above a step's own ``timeout_seconds``), plus the
    whole compensation chain (a saga failing at its last step undoes all the others first),
    plus ``margin_seconds`` for the service's own scheduling."""
    task = task_timeout_seconds(function_timeout_seconds(app.workflows, function=workflow.function))

    def worst(step: Step, *, compensation: bool = False) -> float:
        timeout = task
        if not compensation and step.integration is Integration.LAMBDA_WAIT_FOR_TASK_TOKEN:
            timeout = max(step.timeout_seconds, task)
        return timeout * step.retry.max_attempts + step.retry.retry_wait_seconds

    total = sum(worst(s) for s in (*workflow.steps, *workflow.hooks()))
    if workflow.kind is WorkflowKind.STANDARD:
        total += sum(worst(s, compensation=True) for s in workflow.steps if s.compensation)
    return total + margin_seconds


class Reconciler:
    """One pass over the outbox and the app's state machines; :meth:`run` returns a report.

    ``state_machine_arns`` maps every routed workflow to its ARN (``_reconcile_arns`` resolves
    them from JSON or by name); ``metrics`` gets one count per finding type per run.
    ``list_express=False`` reports the Express machines as skipped without asking: on AWS,
    ListExecutions never serves them, so the scheduled function is granted no call on them."""

    def __init__(
        self,
        app: SagaApp,
        *,
        engine: sa.Engine,
        sfn_client: Any,
        state_machine_arns: Mapping[str, str],
        schema: str = DEFAULT_SCHEMA,
        older_than_minutes: float = 15.0,
        since_hours: float = 24.0,
        deadline_margin_seconds: float = 300.0,
        dry_run: bool = False,
        metrics: MetricsSink | None = None,
        list_express: bool = True,
    ) -> None:
        for name, value in (
            ("older_than_minutes", older_than_minutes),
            ("since_hours", since_hours),
            ("deadline_margin_seconds", deadline_margin_seconds),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ReconcileInputError(f"{name} must be a non-negative number, got {value!r}")
        if since_hours * 60 <= older_than_minutes:
            raise ReconcileInputError(
                f"the window is empty: since_hours ({since_hours:g}) must reach further back than "
                f"older_than_minutes ({older_than_minutes:g} min)"
            )
        self.app, self.engine, self.sfn = app, engine, sfn_client
        self.schema = check_schema(schema)
        self.older_than = timedelta(minutes=older_than_minutes)
        self.since = timedelta(hours=since_hours)
        self.margin = deadline_margin_seconds
        self.dry_run = dry_run
        self.metrics = metrics or NullMetrics()
        self.list_express = list_express
        self.arns = dict(state_machine_arns)
        self.workflows = {w.name: w for w in app.workflows if w.name in self.arns}
        routed = {r.workflow for r in app.routes}
        missing = sorted(routed - set(self.arns))
        if missing:
            raise ReconcileInputError(f"no state machine ARN for routed workflow(s): {', '.join(missing)}")

    # ------------------------------------------------------------------ the pass

    def run(self, *, now: datetime | None = None) -> f.ReconcileReport:
        """``now`` is injectable so a test can stand past a deadline without waiting for it."""
        now = now or datetime.now(UTC)
        since, until = now - self.since, now - self.older_than
        standard = [w for w in self.workflows.values() if w.kind is WorkflowKind.STANDARD]
        known: dict[str, set[str]] = {}
        failed: list[dict[str, Any]] = []
        skipped: list[f.Skipped] = []
        for wf in standard:
            listed = list(self._list(wf.name, started_after=since - _CLOCK_SKEW))
            known[wf.name] = {e["name"] for e in listed}
            failed += [e for e in listed if e["status"] in _FAILED_STATUSES and e["startDate"] >= since]
        for wf in self.workflows.values():
            if wf.kind is WorkflowKind.EXPRESS and not self.list_express:
                skipped.append(f.Skipped(workflow=wf.name, check="failed", reason=_EXPRESS_NOT_LISTED))
            elif wf.kind is WorkflowKind.EXPRESS:
                try:
                    for status in _FAILED_STATUSES:
                        failed += list(self._list(wf.name, started_after=since, status=status))
                except ReconcileAWSError as exc:
                    if exc.code not in _UNSUPPORTED:
                        raise
                    skipped.append(f.Skipped(workflow=wf.name, check="failed", reason=str(exc)))
        checked, lost = self._lost_dispatches(known, since, until)
        # an execution this run has just started cannot be stuck, whatever `now` says
        fresh = {d.execution_name for d in lost if d.action == f.STARTED}
        sagas, others = self._failures(failed)
        report = f.ReconcileReport(
            now=now,
            since=since,
            until=until,
            dry_run=self.dry_run,
            events_checked=checked,
            lost_dispatches=tuple(lost),
            stuck=tuple(s for wf in standard for s in self._stuck(wf, now) if s.execution_name not in fresh),
            compensation_failed=tuple(sagas),
            failed=tuple(others),
            skipped=tuple(skipped),
        )
        for name, value in report.metrics.items():
            self.metrics.count(name, value)
        return report

    # ------------------------------------------------------------------ lost dispatches

    def _lost_dispatches(
        self, known: Mapping[str, set[str]], since: datetime, until: datetime
    ) -> tuple[int, list[f.LostDispatch]]:
        targets: dict[str, list[str]] = {}
        for route in self.app.routes:
            wf = self.workflows.get(route.workflow)
            if wf is not None and wf.kind is WorkflowKind.STANDARD:
                targets.setdefault(route.event_type, []).append(wf.name)
        checked, lost = 0, []
        events = published_events(
            self.engine, schema=self.schema, since=since, until=until, event_types=sorted(targets)
        )
        for event in events:
            checked += 1
            for workflow in dict.fromkeys(targets[event.event_type]):
                name = execution_name(workflow, event.event_id)
                if name in known[workflow]:
                    continue
                arn = _execution_arn(self.arns[workflow], name)
                # ListExecutions is eventually consistent: ask for this one before starting it.
                if self._exists(arn):
                    continue
                lost.append(self._repair(workflow, event, name, arn))
        return checked, lost

    def _exists(self, execution_arn: str) -> bool:
        try:
            self.sfn.describe_execution(executionArn=execution_arn)
        except _AWS_ERRORS as exc:
            if _code(exc) == "ExecutionDoesNotExist":
                return False
            raise aws_error(exc, "DescribeExecution", execution_arn) from exc
        return True

    def _repair(self, workflow: str, event: PublishedEvent, name: str, arn: str) -> f.LostDispatch:
        action, error = f.WOULD_START, None
        if not self.dry_run:
            try:
                arn = self.sfn.start_execution(
                    stateMachineArn=self.arns[workflow], name=name, input=event.body
                )["executionArn"]
                action = f.STARTED
            except _AWS_ERRORS as exc:
                if _code(exc) == "ExecutionAlreadyExists":
                    action = f.ALREADY_EXISTED  # same name <=> same event: someone started it
                else:
                    # Counted and reported, not raised: one throttled start must not hide the
                    # rest of the report; the next run retries it by the same name.
                    action, error = f.START_FAILED, str(aws_error(exc, "StartExecution", name))
        return f.LostDispatch(
            workflow=workflow,
            event_id=str(event.event_id),
            event_type=event.event_type,
            published_at=event.published_at,
            archived=event.archived,
            execution_name=name,
            execution_arn=arn,
            action=action,
            error=error,
        )

    # ------------------------------------------------------------------ stuck

    def _stuck(self, wf: Workflow, now: datetime) -> Iterator[f.StuckExecution]:
        deadline = deadline_seconds(self.app, wf, margin_seconds=self.margin)
        for e in self._list(wf.name, status="RUNNING"):
            running = (now - e["startDate"]).total_seconds()
            if running <= deadline:
                continue
            yield f.StuckExecution(
                workflow=wf.name,
                execution_name=e["name"],
                execution_arn=e["executionArn"],
                started_at=e["startDate"],
                running_seconds=round(running, 1),
                deadline_seconds=deadline,
                current_state=self._current_state(e["executionArn"]),
            )

    def _current_state(self, execution_arn: str) -> str | None:
        try:
            events = self.sfn.get_execution_history(
                executionArn=execution_arn, reverseOrder=True, maxResults=20, includeExecutionData=False
            )["events"]
        except _AWS_ERRORS as exc:
            raise aws_error(exc, "GetExecutionHistory", execution_arn) from exc
        for event in sorted(events, key=lambda e: -int(e["id"])):
            details = event.get("stateEnteredEventDetails")
            if details:
                return str(details["name"])
        return None

    # ------------------------------------------------------------------ failures

    def _failures(
        self, listed: list[dict[str, Any]]
    ) -> tuple[list[f.CompensationFailedSaga], list[f.FailedExecution]]:
        sagas, others = [], []
        for e in sorted(listed, key=lambda e: e["startDate"]):
            wf = self._workflow_of(e["stateMachineArn"])
            described = self._describe(e["executionArn"]) if e["status"] == "FAILED" else {}
            if wf.kind is WorkflowKind.STANDARD and described.get("error") == COMPENSATION_FAILED:
                sagas.append(compensation_report(self.sfn, wf, e["executionArn"]))
                continue
            others.append(
                f.FailedExecution(
                    workflow=wf.name,
                    kind=str(wf.kind),
                    execution_name=e["name"],
                    execution_arn=e["executionArn"],
                    status=e["status"],
                    started_at=e.get("startDate"),
                    stopped_at=e.get("stopDate"),
                    error=described.get("error"),
                    cause=f.short_cause(described.get("cause")),
                )
            )
        return sagas, others

    def _describe(self, execution_arn: str) -> dict[str, Any]:
        try:
            return dict(self.sfn.describe_execution(executionArn=execution_arn))
        except _AWS_ERRORS as exc:
            raise aws_error(exc, "DescribeExecution", execution_arn) from exc

    def _workflow_of(self, state_machine_arn: str) -> Workflow:
        for name, arn in self.arns.items():
            if arn == state_machine_arn:
                return self.workflows[name]
        raise ReconcileError(f"execution of an unexpected state machine {state_machine_arn}")

    # ------------------------------------------------------------------ listing

    def _list(
        self, workflow: str, *, started_after: datetime | None = None, status: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Executions newest first (as the service sorts them), stopping at ``started_after``."""
        arn = self.arns[workflow]
        kwargs: dict[str, Any] = {"stateMachineArn": arn}
        if status:
            kwargs["statusFilter"] = status
        try:
            for page in self.sfn.get_paginator("list_executions").paginate(**kwargs):
                for e in page["executions"]:
                    if started_after is not None and e["startDate"] < started_after:
                        return
                    yield {**e, "stateMachineArn": e.get("stateMachineArn", arn)}
        except _AWS_ERRORS as exc:
            raise aws_error(exc, "ListExecutions", workflow) from exc
