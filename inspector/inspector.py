"""The boto3 side: one injected ``stepfunctions`` client, the same code for moto and real AWS."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from saga_outbox.workflows.links import console_execution_url, is_real_aws_endpoint

from .errors import InspectorError, StateMachineNotFound, translate
from .graph import StateGraph, is_saga_definition, parse_definition
from .history import EventRow, entered_states, iso, parse_history
from .report import ExecutionReport, build_report, outcome_of_saga

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

__all__ = [
    "EXECUTION_STATUSES",
    "SAGA_OUTCOMES",
    "ExecutionInspector",
    "ExecutionSummary",
    "StateMachineSummary",
    "default_region",
]

EXECUTION_STATUSES = ("RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE")
SAGA_OUTCOMES = ("completed", "compensated", "compensation_failed")
_AWS_ERRORS = (ClientError, BotoCoreError)
#: A compiled saga's end state is among its last five events (MarkX entered/exited, SagaX
#: entered/exited, ExecutionSucceeded; or CompensationFailed entered, ExecutionFailed), so a
#: list reads only the tail of each history, newest first.
_TAIL_EVENTS = 10
#: Histories read at once for a list (GetExecutionHistory has its own, smaller, rate bucket).
_HISTORY_READERS = 4


def default_region() -> str:
    """AWS_REGION, else AWS_DEFAULT_REGION, else us-east-1 (read when called, never at import)."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


@dataclass(frozen=True, slots=True)
class StateMachineSummary:
    arn: str
    name: str
    type: str
    creation_date: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "arn": self.arn,
            "name": self.name,
            "type": self.type,
            "creation_date": iso(self.creation_date),
        }


@dataclass(frozen=True, slots=True)
class ExecutionSummary:
    arn: str
    name: str
    state_machine_arn: str
    status: str
    start_date: datetime | None
    stop_date: datetime | None
    #: read off the compiled end states; None for Express/foreign machines and unfinished sagas
    saga_outcome: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "arn": self.arn,
            "name": self.name,
            "state_machine_arn": self.state_machine_arn,
            "status": self.status,
            "saga_outcome": self.saga_outcome,
            "start_date": iso(self.start_date),
            "stop_date": iso(self.stop_date),
        }


class ExecutionInspector:
    """Reads state machines, executions and histories through a ``stepfunctions`` client.

    ``sfn_client`` is injected; when omitted one is created on first use with
    ``boto3.client("stepfunctions", endpoint_url=endpoint_url, region_name=region_name or default_region())``.
    """

    def __init__(
        self,
        sfn_client: SFNClient | None = None,
        *,
        endpoint_url: str | None = None,
        region_name: str | None = None,
    ) -> None:
        self._client = sfn_client
        self._endpoint_url = endpoint_url
        self._region_name = region_name
        self._lock = threading.Lock()

    @property
    def client(self) -> SFNClient:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import boto3

                    self._client = boto3.client(
                        "stepfunctions",
                        endpoint_url=self._endpoint_url,
                        region_name=self._region_name or default_region(),
                    )
        return self._client

    @property
    def on_real_aws(self) -> bool:
        """Whether console links make sense (the client talks to ``*.amazonaws.com``)."""
        return is_real_aws_endpoint(self._endpoint_url or self.client.meta.endpoint_url)

    # ------------------------------------------------------------------ state machines

    def list_state_machines(self) -> list[StateMachineSummary]:
        try:
            pages = self.client.get_paginator("list_state_machines").paginate()
            items = [sm for page in pages for sm in page["stateMachines"]]
        except _AWS_ERRORS as exc:
            raise translate(exc, operation="ListStateMachines") from exc
        return [
            StateMachineSummary(sm["stateMachineArn"], sm["name"], sm.get("type", ""), sm.get("creationDate"))
            for sm in sorted(items, key=lambda sm: sm["name"])
        ]

    def resolve_state_machine(self, name_or_arn: str) -> str:
        """The ARN of a state machine given by name or ARN (raises `StateMachineNotFound`)."""
        if name_or_arn.startswith("arn:"):
            return name_or_arn
        for sm in self.list_state_machines():
            if sm.name == name_or_arn:
                return sm.arn
        raise StateMachineNotFound(name_or_arn)

    def state_machine_graph(self, name_or_arn: str) -> StateGraph:
        arn = self.resolve_state_machine(name_or_arn)
        try:
            described = self.client.describe_state_machine(stateMachineArn=arn)
        except _AWS_ERRORS as exc:
            raise translate(exc, operation="DescribeStateMachine", state_machine=name_or_arn) from exc
        return parse_definition(described["definition"])

    # ------------------------------------------------------------------ executions

    def list_executions(
        self,
        *,
        state_machine: str | None = None,
        status: str | None = None,
        outcome: str | None = None,
        max_results: int | None = None,
    ) -> list[ExecutionSummary]:
        """Executions of one state machine (name or ARN) or of all, newest first, each with its
        saga outcome; optionally only those with this status and/or saga outcome."""
        if status is not None and status.upper() not in EXECUTION_STATUSES:
            raise InspectorError(
                f"unknown execution status {status!r}; one of {', '.join(EXECUTION_STATUSES)}"
            )
        if outcome is not None and outcome not in SAGA_OUTCOMES:
            raise InspectorError(f"unknown saga outcome {outcome!r}; one of {', '.join(SAGA_OUTCOMES)}")
        if state_machine is not None:
            arns = [self.resolve_state_machine(state_machine)]
        else:
            arns = [sm.arn for sm in self.list_state_machines()]
        found: list[ExecutionSummary] = []
        for arn in arns:
            found.extend(self._executions_of(arn, state_machine, status, None if outcome else max_results))
        found.sort(key=lambda e: e.start_date.timestamp() if e.start_date else 0.0, reverse=True)
        if max_results and outcome is None:
            found = found[:max_results]  # read outcomes only for what is shown
        sagas = {arn: self._is_saga(arn, state_machine) for arn in {e.state_machine_arn for e in found}}
        with ThreadPoolExecutor(_HISTORY_READERS, thread_name_prefix="saga-outcome") as pool:
            found = list(pool.map(lambda e: self._with_outcome(e, sagas[e.state_machine_arn]), found))
        if outcome is not None:
            found = [e for e in found if e.saga_outcome == outcome]
        return found[:max_results] if max_results else found

    def _executions_of(
        self, arn: str, shown_as: str | None, status: str | None, max_results: int | None
    ) -> list[ExecutionSummary]:
        kwargs: dict[str, Any] = {"stateMachineArn": arn}
        if status is not None:
            kwargs["statusFilter"] = status.upper()
        pagination: Any = {"MaxItems": max_results} if max_results else {}
        try:
            pages = self.client.get_paginator("list_executions").paginate(
                **kwargs, PaginationConfig=pagination
            )
            items = [ex for page in pages for ex in page["executions"]]
        except _AWS_ERRORS as exc:
            raise translate(exc, operation="ListExecutions", state_machine=shown_as or arn) from exc
        return [
            ExecutionSummary(
                ex["executionArn"],
                ex["name"],
                ex.get("stateMachineArn", arn),
                ex["status"],
                ex.get("startDate"),
                ex.get("stopDate"),
            )
            for ex in items
        ]

    def _is_saga(self, state_machine_arn: str, shown_as: str | None) -> bool:
        try:
            described = self.client.describe_state_machine(stateMachineArn=state_machine_arn)
        except _AWS_ERRORS as exc:
            raise translate(
                exc, operation="DescribeStateMachine", state_machine=shown_as or state_machine_arn
            ) from exc
        return is_saga_definition(described["definition"])

    def _with_outcome(self, execution: ExecutionSummary, saga: bool) -> ExecutionSummary:
        if not saga or execution.status in ("RUNNING", "PENDING_REDRIVE"):
            return execution
        try:
            tail = self.client.get_execution_history(
                executionArn=execution.arn,
                reverseOrder=True,
                maxResults=_TAIL_EVENTS,
                includeExecutionData=False,
            )["events"]
        except _AWS_ERRORS as exc:
            raise translate(exc, operation="GetExecutionHistory", execution_arn=execution.arn) from exc
        return replace(execution, saga_outcome=outcome_of_saga(True, entered_states(tail)))

    def _raw_history(self, execution_arn: str) -> list[dict[str, Any]]:
        try:
            pages = self.client.get_paginator("get_execution_history").paginate(
                executionArn=execution_arn, includeExecutionData=True
            )
            return [dict(event) for page in pages for event in page["events"]]
        except _AWS_ERRORS as exc:
            raise translate(exc, operation="GetExecutionHistory", execution_arn=execution_arn) from exc

    def history(self, execution_arn: str) -> list[EventRow]:
        rows, _ = parse_history(self._raw_history(execution_arn))
        return rows

    def _definition_for(self, execution_arn: str, state_machine_arn: str) -> str:
        # The definition this execution actually ran (differs from the current one after an update).
        try:
            return self.client.describe_state_machine_for_execution(executionArn=execution_arn)["definition"]
        except _AWS_ERRORS:
            pass
        try:
            return self.client.describe_state_machine(stateMachineArn=state_machine_arn)["definition"]
        except _AWS_ERRORS as exc:
            raise translate(exc, operation="DescribeStateMachine", state_machine=state_machine_arn) from exc

    def describe_execution(self, execution_arn: str) -> ExecutionReport:
        """Status, path taken, per-state outcomes, events and graph of one execution."""
        try:
            execution: dict[str, Any] = dict(self.client.describe_execution(executionArn=execution_arn))
        except _AWS_ERRORS as exc:
            raise translate(exc, operation="DescribeExecution", execution_arn=execution_arn) from exc
        definition = self._definition_for(execution_arn, execution["stateMachineArn"])
        events = self._raw_history(execution_arn)
        return build_report(execution, definition, events, console_url=self._console_url(execution_arn))

    def _console_url(self, execution_arn: str) -> str | None:
        if not self.on_real_aws:
            return None
        try:
            return console_execution_url(execution_arn)
        except ValueError:  # a partition without a public console
            return None
