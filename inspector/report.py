"""One execution put together: per-state outcomes, what each compensation undid, and the saga's
outcome read off the compiled workflow's own end states (pure, no AWS)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from itertools import pairwise
from typing import Any

from outbox_relay.tracing import trace_id_of
from saga_outbox.workflows.compiler import saga_outcome

from .failure import SagaFailure, parse_failures
from .graph import GraphNode, StateGraph, parse_definition
from .history import EventRow, StateRun, iso, parse_history

__all__ = ["ExecutionReport", "Outcome", "StateReport", "build_report", "format_path", "outcome_of_saga"]

#: how a helper Choice's branch reads in a printed path
BRANCH_WORDS = {"rejected": "rejected", "unknown": "unknown outcome"}


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    COMPENSATED = "compensated"
    NOT_REACHED = "not_reached"
    RUNNING = "running"


def outcome_of_saga(saga: bool, entered: Sequence[str]) -> str | None:
    """The compiler's ``saga_outcome`` when ``saga`` (the definition is a compiled Standard
    saga, `StateGraph.saga`); None otherwise: Express workflows and foreign state machines have
    no saga end states to read it from."""
    return saga_outcome(entered) if saga else None


@dataclass(frozen=True, slots=True)
class StateReport:
    name: str
    type: str
    outcome: Outcome
    compensation: bool
    compensates: str | None
    compensated_by: str | None
    runs: tuple[StateRun, ...]
    #: the happy-path step a helper (its failure Choice, the pivot's Unresolved) belongs to
    helper_of: str | None = None
    #: for a helper Choice the execution went through: "rejected" | "unknown", the branch taken
    branch: str | None = None

    @property
    def last_run(self) -> StateRun | None:
        return self.runs[-1] if self.runs else None

    def to_dict(self) -> dict[str, Any]:
        last = self.last_run
        return {
            "name": self.name,
            "type": self.type,
            "outcome": self.outcome.value,
            "compensation": self.compensation,
            "compensates": self.compensates,
            "compensated_by": self.compensated_by,
            "helper_of": self.helper_of,
            "branch": self.branch,
            "run_count": len(self.runs),
            "entered_at": iso(last.entered_at) if last else None,
            "exited_at": iso(last.exited_at) if last else None,
            "input": last.input if last else None,
            "output": last.output if last else None,
            "error": last.error if last else None,
            "cause": last.cause if last else None,
        }


@dataclass(frozen=True, slots=True)
class ExecutionReport:
    execution_arn: str
    name: str
    state_machine_arn: str
    status: str
    #: "completed" | "compensated" | "compensation_failed"; None: not a saga, or no end state yet
    saga_outcome: str | None
    start_date: datetime | None
    stop_date: datetime | None
    input: str | None
    output: str | None
    error: str | None
    cause: str | None
    path: tuple[str, ...]
    compensations: tuple[str, ...]
    states: tuple[StateReport, ...]
    events: tuple[EventRow, ...]
    graph: StateGraph
    console_url: str | None = None
    #: what CompensationFailed's cause names (see :mod:`.failure`); empty for any other end
    failures: tuple[SagaFailure, ...] = ()
    #: the X-Ray trace header the execution was started with (DescribeExecution's traceHeader)
    trace_header: str | None = None

    @property
    def trace_id(self) -> str | None:
        """The X-Ray trace id (``1-...``) of the request that started the execution."""
        return trace_id_of(self.trace_header)

    def state(self, name: str) -> StateReport:
        for report in self.states:
            if report.name == name:
                return report
        raise KeyError(name)

    @property
    def outcomes(self) -> dict[str, str]:
        return {s.name: s.outcome.value for s in self.states}

    def to_dict(self) -> dict[str, Any]:
        return {
            "execution_arn": self.execution_arn,
            "name": self.name,
            "state_machine_arn": self.state_machine_arn,
            "status": self.status,
            "saga_outcome": self.saga_outcome,
            "start_date": iso(self.start_date),
            "stop_date": iso(self.stop_date),
            "input": self.input,
            "output": self.output,
            "error": self.error,
            "cause": self.cause,
            "failures": [f.to_dict() for f in self.failures],
            "path": list(self.path),
            "compensations": list(self.compensations),
            "outcomes": self.outcomes,
            "states": [s.to_dict() for s in self.states],
            "events": [e.to_dict() for e in self.events],
            "graph": self.graph.to_dict(),
            "console_url": self.console_url,
            "trace_header": self.trace_header,
            "trace_id": self.trace_id,
        }


def _classify(node: GraphNode, runs: Sequence[StateRun], running: bool) -> Outcome:
    if not runs:
        return Outcome.NOT_REACHED
    last = runs[-1]
    if node.type == "Fail":
        return Outcome.FAILED
    if last.exited_id is None and node.type != "Succeed":
        # still open: a failed attempt may yet be retried or caught
        return Outcome.RUNNING if running else Outcome.FAILED
    return Outcome.FAILED if last.failed else Outcome.SUCCEEDED


def _branches(graph: StateGraph, path: Sequence[str]) -> dict[str, str]:
    """The branch each helper Choice on ``path`` took: read off the edge to the state entered
    next (the compiler labels it, see :mod:`.structure`)."""
    labels = {(e.source, e.target): e.branch for e in graph.edges if e.branch}
    taken: dict[str, str] = {}
    for source, target in pairwise(path):
        if (label := labels.get((source, target))) is not None:
            taken[source] = label
    return taken


def format_path(report: ExecutionReport) -> str:
    """The path as ``executions show`` prints it: every state entered, each helper Choice with
    the branch it took (``ReserveInventoryFailed (rejected)``)."""
    branch = {s.name: s.branch for s in report.states if s.branch}
    shown = [f"{name} ({BRANCH_WORDS[branch[name]]})" if name in branch else name for name in report.path]
    return " -> ".join(shown) or "(none)"


def build_report(
    execution: Mapping[str, Any],
    definition: str | Mapping[str, Any],
    events: Iterable[Mapping[str, Any]],
    *,
    console_url: str | None = None,
) -> ExecutionReport:
    """Combine DescribeExecution output, the definition and the history into one report.

    A state is *compensated* when it succeeded and the compensation the compiler emitted for it
    (``Payload.kind == "compensation"``, ``Payload.step`` naming it) later ran and succeeded.
    """
    graph = parse_definition(definition)
    rows, runs = parse_history(events)
    status = str(execution.get("status", "UNKNOWN"))
    running = status in ("RUNNING", "PENDING_REDRIVE")
    by_name: dict[str, list[StateRun]] = {}
    for run in runs:
        by_name.setdefault(run.name, []).append(run)

    outcomes = {n.name: _classify(n, by_name.get(n.name, []), running) for n in graph.nodes}
    compensated_by: dict[str, str] = {}
    comp_runs = [r for r in runs if (n := graph.node(r.name)) is not None and n.compensation]
    for run in comp_runs:
        target = graph.node(run.name).compensates  # type: ignore[union-attr]
        done = not run.failed and run.exited_id is not None
        if done and target is not None and outcomes.get(target) == Outcome.SUCCEEDED:
            compensated_by[target] = run.name
            outcomes[target] = Outcome.COMPENSATED

    path = tuple(r.name for r in runs)
    branches = _branches(graph, path)
    reports = tuple(
        StateReport(
            name=n.name,
            type=n.type,
            outcome=outcomes[n.name],
            compensation=n.compensation,
            compensates=n.compensates,
            compensated_by=compensated_by.get(n.name),
            runs=tuple(by_name.get(n.name, [])),
            helper_of=n.helper_of,
            branch=branches.get(n.name),
        )
        for n in graph.nodes
    )
    return ExecutionReport(
        execution_arn=str(execution.get("executionArn", "")),
        name=str(execution.get("name", "")),
        state_machine_arn=str(execution.get("stateMachineArn", "")),
        status=status,
        saga_outcome=outcome_of_saga(graph.saga, path),
        start_date=execution.get("startDate"),
        stop_date=execution.get("stopDate"),
        input=execution.get("input"),
        output=execution.get("output"),
        error=execution.get("error"),
        cause=execution.get("cause"),
        path=path,
        compensations=tuple(r.name for r in comp_runs),
        states=reports,
        events=tuple(rows),
        graph=graph,
        console_url=console_url,
        failures=parse_failures(execution.get("error"), execution.get("cause")) if graph.saga else (),
        trace_header=execution.get("traceHeader") or None,
    )
