"""Pure parsing: a state-machine definition into a laid-out graph, an execution history into
events-table rows, state runs, the path taken and one outcome per state. No AWS calls here."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from .errors import InvalidDefinition

__all__ = [
    "COMPENSATION_NAME_PREFIXES",
    "EventRow",
    "ExecutionReport",
    "GraphEdge",
    "GraphNode",
    "Outcome",
    "StateGraph",
    "StateReport",
    "StateRun",
    "build_report",
    "parse_definition",
    "parse_history",
]

#: Fallback when a task's Parameters.Payload carries no ``"kind"``: these name prefixes mark compensations.
COMPENSATION_NAME_PREFIXES: tuple[str, ...] = ("Compensate", "Release", "Refund")
COMPENSATION_FAILED_STATE = "CompensationFailed"

NODE_HEIGHT = 40
LAYER_GAP = 70
NODE_GAP = 36
MARGIN = 20


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    COMPENSATED = "compensated"
    NOT_REACHED = "not_reached"
    RUNNING = "running"


# --------------------------------------------------------------------------- graph


@dataclass(frozen=True, slots=True)
class GraphNode:
    name: str
    type: str
    kind: str | None  # Parameters.Payload.kind when present: "action" | "compensation" | "hook"
    compensation: bool
    compensates: str | None
    end: bool
    layer: int
    x: int
    y: int
    width: int
    height: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "kind": self.kind,
            "compensation": self.compensation,
            "compensates": self.compensates,
            "end": self.end,
            "layer": self.layer,
            "x": self.x,
            "y": self.y,
            "width": self.width,
            "height": self.height,
        }


@dataclass(frozen=True, slots=True)
class GraphEdge:
    source: str
    target: str
    kind: str  # "next" | "default" | "choice" | "catch"

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "kind": self.kind}


@dataclass(frozen=True, slots=True)
class StateGraph:
    start_at: str
    nodes: tuple[GraphNode, ...]
    edges: tuple[GraphEdge, ...]
    width: int
    height: int

    def node(self, name: str) -> GraphNode | None:
        for node in self.nodes:
            if node.name == name:
                return node
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "start_at": self.start_at,
            "width": self.width,
            "height": self.height,
            "nodes": [n.to_dict() for n in self.nodes],
            "edges": [e.to_dict() for e in self.edges],
        }


def _load(definition: str | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(definition, Mapping):
        doc: Any = definition
    else:
        try:
            doc = json.loads(definition)
        except (TypeError, ValueError) as exc:
            raise InvalidDefinition(f"state-machine definition is not JSON: {exc}") from exc
    if not isinstance(doc, Mapping) or not isinstance(doc.get("States"), Mapping) or "StartAt" not in doc:
        raise InvalidDefinition("state-machine definition needs 'StartAt' and 'States'")
    return doc


def _payload(state: Mapping[str, Any]) -> Mapping[str, Any]:
    params = state.get("Parameters") or state.get("Arguments")
    if isinstance(params, Mapping):
        payload = params.get("Payload")
        if isinstance(payload, Mapping):
            return payload
    return {}


def _is_compensation(name: str, state: Mapping[str, Any]) -> bool:
    if state.get("Type") not in ("Task", "Pass"):
        return False
    kind = _payload(state).get("kind")
    if isinstance(kind, str):
        return kind == "compensation"
    return state.get("Type") == "Task" and name.startswith(COMPENSATION_NAME_PREFIXES)


def _strip_prefix(name: str) -> str:
    for prefix in COMPENSATION_NAME_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def _split_words(name: str) -> list[str]:
    words: list[str] = []
    for ch in name:
        if ch.isupper() or not words:
            words.append(ch)
        else:
            words[-1] += ch
    return words


def _compensation_target(name: str, state: Mapping[str, Any], actions: Sequence[str]) -> str | None:
    """Which action state a compensation undoes: Payload ``compensates``/``step``, else by name."""
    payload = _payload(state)
    for key in ("compensates", "step"):
        value = payload.get(key)
        if isinstance(value, str) and value in actions:
            return value
    rest = _strip_prefix(name)
    if rest in actions:
        return rest
    # ReleaseStock -> ReserveStock, RefundPayment -> ChargePayment: the longest shared word suffix
    # that names exactly one action.
    words = _split_words(rest)
    for start in range(len(words)):
        suffix = "".join(words[start:])
        matches = [a for a in actions if a.endswith(suffix)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            break
    return None


def _edges(name: str, state: Mapping[str, Any]) -> list[GraphEdge]:
    out: list[GraphEdge] = []
    if isinstance(state.get("Next"), str):
        out.append(GraphEdge(name, state["Next"], "next"))
    for choice in state.get("Choices") or ():
        if isinstance(choice, Mapping) and isinstance(choice.get("Next"), str):
            out.append(GraphEdge(name, choice["Next"], "choice"))
    if isinstance(state.get("Default"), str):
        out.append(GraphEdge(name, state["Default"], "default"))
    for catcher in state.get("Catch") or ():
        if isinstance(catcher, Mapping) and isinstance(catcher.get("Next"), str):
            out.append(GraphEdge(name, catcher["Next"], "catch"))
    seen: set[tuple[str, str, str]] = set()
    unique = []
    for edge in out:
        key = (edge.source, edge.target, edge.kind)
        if key not in seen:
            seen.add(key)
            unique.append(edge)
    return unique


def _layers(start_at: str, names: Sequence[str], edges: Sequence[GraphEdge]) -> dict[str, int]:
    """Longest-path layering from StartAt, ignoring edges that close a loop (found by DFS)."""
    children: dict[str, list[str]] = {n: [] for n in names}
    for edge in edges:
        children[edge.source].append(edge.target)
    order: list[str] = []  # reverse post-order = a topological order of the loop-free graph
    back: set[tuple[str, str]] = set()
    state: dict[str, int] = {}  # 1 on the DFS stack, 2 done
    roots = [start_at] if start_at in children else []
    roots += [n for n in names if n != start_at]
    for root in roots:
        if root in state:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        state[root] = 1
        while stack:
            node, i = stack.pop()
            if i < len(children[node]):
                stack.append((node, i + 1))
                child = children[node][i]
                if state.get(child) == 1:
                    back.add((node, child))
                elif child not in state:
                    state[child] = 1
                    stack.append((child, 0))
            else:
                state[node] = 2
                order.append(node)
    order.reverse()
    layer: dict[str, int] = {}
    for node in order:
        layer.setdefault(node, 0)
        for child in children[node]:
            if (node, child) not in back:
                layer[child] = max(layer.get(child, 0), layer[node] + 1)
    return layer


def parse_definition(definition: str | Mapping[str, Any]) -> StateGraph:
    """Top-level states of an ASL definition as a top-down layered graph (BFS depth from StartAt)."""
    doc = _load(definition)
    states: Mapping[str, Mapping[str, Any]] = doc["States"]
    start_at = str(doc["StartAt"])
    edges = [e for name, st in states.items() for e in _edges(name, st) if e.target in states]

    layer = _layers(start_at, list(states), edges)
    actions = [
        n
        for n, st in states.items()
        if st.get("Type") == "Task" and not _is_compensation(n, st) and _payload(st).get("kind") != "hook"
    ]
    layers: dict[int, list[str]] = {}
    for name in layer:
        layers.setdefault(layer[name], []).append(name)
    # one top-down barycentre sweep: order each layer by the mean position of its parents
    position: dict[str, float] = {}
    for index in sorted(layers):

        def barycentre(name: str) -> float:
            parents = [position[e.source] for e in edges if e.target == name and e.source in position]
            return sum(parents) / len(parents) if parents else float("inf")

        layers[index].sort(key=barycentre)  # stable: definition order breaks ties
        for i, name in enumerate(layers[index]):
            position[name] = i - (len(layers[index]) - 1) / 2

    def width_of(name: str) -> int:
        return max(130, 8 * len(name) + 30)

    row_widths = {
        i: sum(width_of(n) for n in names) + NODE_GAP * (len(names) - 1) for i, names in layers.items()
    }
    total_width = max(row_widths.values(), default=0) + 2 * MARGIN
    nodes: list[GraphNode] = []
    for index in sorted(layers):
        x = (total_width - row_widths[index]) // 2
        y = MARGIN + index * (NODE_HEIGHT + LAYER_GAP)
        for name in layers[index]:
            st = states[name]
            comp = _is_compensation(name, st)
            nodes.append(
                GraphNode(
                    name=name,
                    type=str(st.get("Type", "")),
                    kind=kind if isinstance(kind := _payload(st).get("kind"), str) else None,
                    compensation=comp,
                    compensates=_compensation_target(name, st, actions) if comp else None,
                    end=bool(st.get("End")) or st.get("Type") in ("Succeed", "Fail"),
                    layer=index,
                    x=x,
                    y=y,
                    width=width_of(name),
                    height=NODE_HEIGHT,
                )
            )
            x += width_of(name) + NODE_GAP
    height = MARGIN * 2 + (max(layers, default=-1) + 1) * (NODE_HEIGHT + LAYER_GAP) - LAYER_GAP
    return StateGraph(start_at, tuple(nodes), tuple(edges), int(total_width), max(height, 0))


# --------------------------------------------------------------------------- history


def _iso(value: datetime | None) -> str | None:
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
            "timestamp": _iso(self.timestamp),
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
            "entered_at": _iso(self.entered_at),
            "exited_at": _iso(self.exited_at),
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


# --------------------------------------------------------------------------- report


@dataclass(frozen=True, slots=True)
class StateReport:
    name: str
    type: str
    outcome: Outcome
    compensation: bool
    compensates: str | None
    compensated_by: str | None
    runs: tuple[StateRun, ...]

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
            "run_count": len(self.runs),
            "entered_at": _iso(last.entered_at) if last else None,
            "exited_at": _iso(last.exited_at) if last else None,
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
    saga_outcome: (
        str  # completed | compensated | compensation_failed | failed | running | aborted | timed_out
    )
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
            "start_date": _iso(self.start_date),
            "stop_date": _iso(self.stop_date),
            "input": self.input,
            "output": self.output,
            "error": self.error,
            "cause": self.cause,
            "path": list(self.path),
            "compensations": list(self.compensations),
            "outcomes": self.outcomes,
            "states": [s.to_dict() for s in self.states],
            "events": [e.to_dict() for e in self.events],
            "graph": self.graph.to_dict(),
            "console_url": self.console_url,
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


def build_report(
    execution: Mapping[str, Any],
    definition: str | Mapping[str, Any],
    events: Iterable[Mapping[str, Any]],
    *,
    console_url: str | None = None,
) -> ExecutionReport:
    """Combine DescribeExecution output, the definition and the history into one report.

    A state is *compensated* when it succeeded and a compensation state for it later ran and
    succeeded. A compensation's target is read from its Payload (``compensates``/``step``) or its
    name; compensations whose target cannot be told are paired, in order, with the succeeded
    actions in reverse completion order (the saga's undo order).
    """
    graph = parse_definition(definition)
    rows, runs = parse_history(events)
    status = str(execution.get("status", "UNKNOWN"))
    running = status in ("RUNNING", "PENDING_REDRIVE")
    by_name: dict[str, list[StateRun]] = {}
    for run in runs:
        by_name.setdefault(run.name, []).append(run)

    outcomes = {n.name: _classify(n, by_name.get(n.name, []), running) for n in graph.nodes}

    # Pair each successful compensation run with the action it undoes.
    compensated_by: dict[str, str] = {}
    comp_runs = [r for r in runs if (n := graph.node(r.name)) is not None and n.compensation]
    for run in comp_runs:
        node = graph.node(run.name)
        assert node is not None
        if run.failed or run.exited_id is None:
            continue
        target = node.compensates
        if target is None or target in compensated_by:
            done = [
                r
                for r in runs
                if (a := graph.node(r.name)) is not None
                and a.type == "Task"
                and not a.compensation
                and a.kind != "hook"
                and r.exited_id is not None
                and r.exited_id < run.entered_id
                and outcomes.get(r.name) == Outcome.SUCCEEDED
                and r.name not in compensated_by
            ]
            target = done[-1].name if done and target is None else target
            if target is None or target in compensated_by:
                continue
        if outcomes.get(target) == Outcome.SUCCEEDED:
            compensated_by[target] = run.name
            outcomes[target] = Outcome.COMPENSATED

    compensations = tuple(r.name for r in comp_runs)
    if running:
        saga = "running"
    elif COMPENSATION_FAILED_STATE in by_name or any(r.failed for r in comp_runs):
        saga = "compensation_failed"
    elif compensations:
        saga = "compensated"
    elif status == "SUCCEEDED":
        saga = "completed"
    else:
        saga = status.lower()

    reports = tuple(
        StateReport(
            name=n.name,
            type=n.type,
            outcome=outcomes[n.name],
            compensation=n.compensation,
            compensates=n.compensates,
            compensated_by=compensated_by.get(n.name),
            runs=tuple(by_name.get(n.name, [])),
        )
        for n in graph.nodes
    )
    return ExecutionReport(
        execution_arn=str(execution.get("executionArn", "")),
        name=str(execution.get("name", "")),
        state_machine_arn=str(execution.get("stateMachineArn", "")),
        status=status,
        saga_outcome=saga,
        start_date=execution.get("startDate"),
        stop_date=execution.get("stopDate"),
        input=execution.get("input"),
        output=execution.get("output"),
        error=execution.get("error"),
        cause=execution.get("cause"),
        path=tuple(r.name for r in runs),
        compensations=compensations,
        states=reports,
        events=tuple(rows),
        graph=graph,
        console_url=console_url,
    )
