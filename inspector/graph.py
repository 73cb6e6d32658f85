"""A state-machine definition as a laid-out graph: nodes in a grid, edges routed around them.

What a state *is* comes from the saga compiler's own contract, never from its name: every Task
the compiler emits carries ``Parameters.Payload.kind`` (``"action"``, ``"compensation"`` or
``"hook"``) and ``Payload.step`` (the step a compensation undoes), and a compiled Standard saga
ends in the compiler's ``MarkCompleted``/``MarkCompensated``/``CompensationFailed`` states. A
definition that carries none of this is drawn as plain states.

Layout of a compiled saga, from the compiler's structure (:mod:`.structure`): the happy path in
the first column; each step's helpers (the Choice after its ``Catch``, the pivot's
``Unresolved`` Pass), drawn as small diamond/connector nodes, in the next column *in the step's
own row* (the Pass one row below its Choice); the compensation chain in the third column;
``CompensationFailed`` in the last. Any other definition carries no such structure: its columns
count the ``Catch`` edges that separate a state from ``StartAt``. Rows in both: longest path
from ``StartAt`` (so every edge but a step's own helper edge points down). Edges are routed by
:mod:`.routes`, so no edge passes behind a node it does not connect.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from saga_outbox.workflows.compiler import COMPENSATION_FAILED, MARK_COMPENSATED, MARK_COMPLETED

from .errors import InvalidDefinition
from .routes import COLUMN_GAP, NODE_GAP, NODE_HEIGHT, Point, Router, row_top
from .structure import CHAIN, HAPPY, SagaStructure, saga_structure

__all__ = ["GraphEdge", "GraphNode", "StateGraph", "is_saga_definition", "parse_definition"]

_SAGA_END_STATES = frozenset({MARK_COMPLETED, MARK_COMPENSATED, COMPENSATION_FAILED})
#: side of the square a helper's diamond (Choice) or connector (Pass) is drawn in
HELPER_SIZE = 28


@dataclass(frozen=True, slots=True)
class GraphNode:
    name: str
    type: str
    kind: str | None  # Parameters.Payload.kind as compiled: "action" | "compensation" | "hook"
    compensation: bool
    compensates: str | None
    end: bool
    #: "box" | "choice" (a helper Choice: diamond) | "connector" (a helper Pass: small circle)
    shape: str
    helper_of: str | None  # the happy-path step a helper belongs to
    layer: int  # row
    column: int
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
            "shape": self.shape,
            "helper_of": self.helper_of,
            "layer": self.layer,
            "column": self.column,
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
    #: where to draw it; two points: a curve between neighbouring rows, more: a polyline
    points: tuple[Point, ...] = ()
    #: out of a step's helper Choice: "rejected" (undo the steps before it) or "unknown"
    #: (undo the step itself first, or the pivot's Unresolved); None elsewhere
    branch: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "kind": self.kind,
            "branch": self.branch,
            "points": [[round(x, 1), round(y, 1)] for x, y in self.points],
        }


@dataclass(frozen=True, slots=True)
class StateGraph:
    start_at: str
    nodes: tuple[GraphNode, ...]
    edges: tuple[GraphEdge, ...]
    width: int
    height: int
    #: the definition ends in the compiler's saga end states, so a saga outcome can be read off it
    saga: bool = False

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
            "saga": self.saga,
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


def is_saga_definition(definition: str | Mapping[str, Any]) -> bool:
    """Whether the definition ends in the compiler's saga end states (a compiled Standard saga;
    a compiled Express workflow has no compensation end states)."""
    return set(_load(definition)["States"]) >= _SAGA_END_STATES


def _payload(state: Mapping[str, Any]) -> Mapping[str, Any]:
    params = state.get("Parameters") or state.get("Arguments")
    if isinstance(params, Mapping):
        payload = params.get("Payload")
        if isinstance(payload, Mapping):
            return payload
    return {}


def _kind(state: Mapping[str, Any]) -> str | None:
    kind = _payload(state).get("kind")
    return kind if isinstance(kind, str) else None


def _edges(name: str, state: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    if isinstance(state.get("Next"), str):
        out.append((name, state["Next"], "next"))
    for choice in state.get("Choices") or ():
        if isinstance(choice, Mapping) and isinstance(choice.get("Next"), str):
            out.append((name, choice["Next"], "choice"))
    if isinstance(state.get("Default"), str):
        out.append((name, state["Default"], "default"))
    for catcher in state.get("Catch") or ():
        if isinstance(catcher, Mapping) and isinstance(catcher.get("Next"), str):
            out.append((name, catcher["Next"], "catch"))
    return list(dict.fromkeys(out))  # one edge per (source, target, kind), in order


def _rows(
    start_at: str,
    names: Sequence[str],
    edges: Sequence[tuple[str, str, str]],
    flat: frozenset[tuple[str, str]] = frozenset(),
) -> dict[str, int]:
    """Longest-path layering from StartAt, ignoring edges that close a loop (found by DFS);
    an edge in ``flat`` keeps its target in its source's row."""
    children: dict[str, list[str]] = {n: [] for n in names}
    for source, target, _ in edges:
        children[source].append(target)
    order: list[str] = []  # reverse post-order = a topological order of the loop-free graph
    back: set[tuple[str, str]] = set()
    seen: dict[str, int] = {}  # 1 on the DFS stack, 2 done
    roots = [start_at] if start_at in children else []
    for root in roots + [n for n in names if n != start_at]:
        if root in seen:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        seen[root] = 1
        while stack:
            node, i = stack.pop()
            if i < len(children[node]):
                stack.append((node, i + 1))
                child = children[node][i]
                if seen.get(child) == 1:
                    back.add((node, child))
                elif child not in seen:
                    seen[child] = 1
                    stack.append((child, 0))
            else:
                seen[node] = 2
                order.append(node)
    row: dict[str, int] = {}
    for node in reversed(order):
        row.setdefault(node, 0)
        for child in children[node]:
            if (node, child) not in back:
                row[child] = max(row.get(child, 0), row[node] + ((node, child) not in flat))
    return row


def _catch_columns(
    start_at: str, names: Sequence[str], edges: Sequence[tuple[str, str, str]]
) -> dict[str, int]:
    """For a definition with no saga structure: fewest Catch edges on a path from StartAt (0-1
    BFS); unreachable states share column 0."""
    column = {n: 0 if n == start_at else len(names) for n in names}
    queue: deque[str] = deque([start_at] if start_at in column else [])
    while queue:
        node = queue.popleft()
        for source, target, kind in edges:
            if source != node:
                continue
            cost = column[node] + (kind == "catch")
            if cost < column[target]:
                column[target] = cost
                (queue.append if kind == "catch" else queue.appendleft)(target)
    return {n: (c if c < len(names) else 0) for n, c in column.items()}


def _dense(columns: Mapping[str, int]) -> dict[str, int]:
    """Renumber the used columns 0, 1, ... (a saga without helpers has no helper column)."""
    used = {c: i for i, c in enumerate(sorted(set(columns.values())))}
    return {n: used[c] for n, c in columns.items()}


def _order(
    name: str,
    rows: Mapping[str, int],
    columns: Mapping[str, int],
    names: Sequence[str],
    structure: SagaStructure | None,
) -> tuple[int, ...]:
    """Reading order of the nodes (and of the report's states): top to bottom; in a saga the
    happy path first, each step followed by its helpers, then the compensation chain, then
    CompensationFailed."""
    if structure is None:
        return (0, 0, 0, rows[name], columns[name], names.index(name))
    part = structure.column[name]
    anchor = structure.owner.get(name, name)
    group = HAPPY if part < CHAIN else part
    return (group, rows[anchor], int(name != anchor), rows[name], columns[name], names.index(name))


def parse_definition(definition: str | Mapping[str, Any]) -> StateGraph:
    """Top-level states of an ASL definition, laid out in a grid with routed edges."""
    doc = _load(definition)
    states: Mapping[str, Mapping[str, Any]] = doc["States"]
    start_at = str(doc["StartAt"])
    names = list(states)
    raw_edges = [e for name, st in states.items() for e in _edges(name, st) if e[1] in states]
    saga = is_saga_definition(doc)
    owner: Mapping[str, str] = {}
    branch: Mapping[tuple[str, str], str] = {}
    structure: SagaStructure | None = None
    if saga:
        structure = saga_structure(start_at, states, raw_edges)
        owner, branch = structure.owner, structure.branch
        # a step's first helper sits beside it, in its row
        flat = frozenset((s, t) for s, t, _ in raw_edges if owner.get(t) == s)
        rows = _rows(start_at, names, raw_edges, flat)
        columns = _dense(structure.column)
    else:
        rows = _rows(start_at, names, raw_edges)
        columns = _catch_columns(start_at, names, raw_edges)

    def shape(name: str) -> str:
        if name not in owner:
            return "box"
        return "choice" if states[name].get("Type") == "Choice" else "connector"

    def width(name: str) -> int:
        return HELPER_SIZE if name in owner else max(130, 8 * len(name) + 30)

    cells: dict[tuple[int, int], list[str]] = {}
    for name in names:  # definition order inside a cell
        cells.setdefault((columns[name], rows[name]), []).append(name)
    n_columns = max(columns.values(), default=-1) + 1
    n_rows = max(rows.values(), default=-1) + 1
    column_width = [0] * n_columns
    for (col, _), members in cells.items():
        span = sum(width(m) for m in members) + NODE_GAP * (len(members) - 1)
        column_width[col] = max(column_width[col], span)
    column_x = []
    x = COLUMN_GAP
    for cw in column_width:
        column_x.append(x)
        x += cw + COLUMN_GAP
    total_width, total_height = x, row_top(n_rows)

    nodes: dict[str, GraphNode] = {}
    for (col, row), members in cells.items():
        span = sum(width(m) for m in members) + NODE_GAP * (len(members) - 1)
        left = column_x[col] + (column_width[col] - span) // 2
        for name in members:
            st = states[name]
            kind = _kind(st)
            compensates = _payload(st).get("step") if kind == "compensation" else None
            height = HELPER_SIZE if name in owner else NODE_HEIGHT
            nodes[name] = GraphNode(
                name=name,
                type=str(st.get("Type", "")),
                kind=kind,
                compensation=kind == "compensation",
                compensates=compensates if isinstance(compensates, str) and compensates in states else None,
                end=bool(st.get("End")) or st.get("Type") in ("Succeed", "Fail"),
                shape=shape(name),
                helper_of=owner.get(name),
                layer=row,
                column=col,
                x=left,
                y=row_top(row) + (NODE_HEIGHT - height) // 2,  # centred: its sides meet the row's edges
                width=width(name),
                height=height,
            )
            left += width(name) + NODE_GAP
    routes = Router(nodes, cells, column_x, column_width).route(raw_edges)
    edges = tuple(
        GraphEdge(source, target, kind, points, branch.get((source, target)))
        for (source, target, kind), points in zip(raw_edges, routes, strict=True)
    )
    ordered = tuple(nodes[n] for n in sorted(nodes, key=lambda n: _order(n, rows, columns, names, structure)))
    return StateGraph(
        start_at=start_at,
        nodes=ordered,
        edges=edges,
        width=int(total_width),
        height=int(total_height),
        saga=saga,
    )
