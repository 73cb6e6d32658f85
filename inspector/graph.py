"""A state-machine definition as a laid-out graph: nodes in a grid, edges routed around them.

What a state *is* comes from the saga compiler's own contract, never from its name: every Task
the compiler emits carries ``Parameters.Payload.kind`` (``"action"``, ``"compensation"`` or
``"hook"``) and ``Payload.step`` (the step a compensation undoes), and a compiled Standard saga
ends in the compiler's ``MarkCompleted``/``MarkCompensated``/``CompensationFailed`` states. A
definition that carries none of this is drawn as plain states.

Layout: rows by longest path from ``StartAt`` (so every forward edge points down); columns by
how many ``Catch`` edges separate a state from ``StartAt`` (the happy path, the compensation
chain, then what a failing compensation leads to). Edges between neighbouring rows are drawn
straight through the empty band between the rows; every other edge runs along the empty gaps
between columns and between rows, so no edge passes behind a node it does not connect.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from saga_outbox.workflows.compiler import COMPENSATION_FAILED, MARK_COMPENSATED, MARK_COMPLETED

from .errors import InvalidDefinition

__all__ = ["GraphEdge", "GraphNode", "StateGraph", "is_saga_definition", "parse_definition"]

NODE_HEIGHT = 40
ROW_GAP = 40
COLUMN_GAP = 56  # room for several edges side by side in one gap
NODE_GAP = 24  # between nodes that share a row and a column
LANE = 6  # distance between edges that share a gap

_SAGA_END_STATES = frozenset({MARK_COMPLETED, MARK_COMPENSATED, COMPENSATION_FAILED})

Point = tuple[float, float]


@dataclass(frozen=True, slots=True)
class GraphNode:
    name: str
    type: str
    kind: str | None  # Parameters.Payload.kind as compiled: "action" | "compensation" | "hook"
    compensation: bool
    compensates: str | None
    end: bool
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "kind": self.kind,
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


def _rows(start_at: str, names: Sequence[str], edges: Sequence[tuple[str, str, str]]) -> dict[str, int]:
    """Longest-path layering from StartAt, ignoring edges that close a loop (found by DFS)."""
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
                row[child] = max(row.get(child, 0), row[node] + 1)
    return row


def _columns(start_at: str, names: Sequence[str], edges: Sequence[tuple[str, str, str]]) -> dict[str, int]:
    """Fewest Catch edges on a path from StartAt (0-1 BFS); unreachable states share column 0."""
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


def _width(name: str) -> int:
    return max(130, 8 * len(name) + 30)


def parse_definition(definition: str | Mapping[str, Any]) -> StateGraph:
    """Top-level states of an ASL definition, laid out in a grid with routed edges."""
    doc = _load(definition)
    states: Mapping[str, Mapping[str, Any]] = doc["States"]
    start_at = str(doc["StartAt"])
    names = list(states)
    raw_edges = [e for name, st in states.items() for e in _edges(name, st) if e[1] in states]
    rows = _rows(start_at, names, raw_edges)
    columns = _columns(start_at, names, raw_edges)

    cells: dict[tuple[int, int], list[str]] = {}
    for name in names:  # definition order inside a cell
        cells.setdefault((columns[name], rows[name]), []).append(name)
    n_columns = max(columns.values(), default=-1) + 1
    n_rows = max(rows.values(), default=-1) + 1
    column_width = [0] * n_columns
    for (col, _), members in cells.items():
        span = sum(_width(m) for m in members) + NODE_GAP * (len(members) - 1)
        column_width[col] = max(column_width[col], span)
    column_x = []
    x = COLUMN_GAP
    for width in column_width:
        column_x.append(x)
        x += width + COLUMN_GAP
    total_width, total_height = x, ROW_GAP + n_rows * (NODE_HEIGHT + ROW_GAP)

    nodes: dict[str, GraphNode] = {}
    for (col, row), members in cells.items():
        span = sum(_width(m) for m in members) + NODE_GAP * (len(members) - 1)
        left = column_x[col] + (column_width[col] - span) // 2
        for name in members:
            st = states[name]
            kind = _kind(st)
            compensates = _payload(st).get("step") if kind == "compensation" else None
            nodes[name] = GraphNode(
                name=name,
                type=str(st.get("Type", "")),
                kind=kind,
                compensation=kind == "compensation",
                compensates=compensates if isinstance(compensates, str) and compensates in states else None,
                end=bool(st.get("End")) or st.get("Type") in ("Succeed", "Fail"),
                layer=row,
                column=col,
                x=left,
                y=ROW_GAP + row * (NODE_HEIGHT + ROW_GAP),
                width=_width(name),
                height=NODE_HEIGHT,
            )
            left += _width(name) + NODE_GAP
    router = _Router(nodes, cells, column_x, column_width)
    edges = router.route(raw_edges)
    ordered = tuple(nodes[n] for n in sorted(nodes, key=lambda n: (rows[n], columns[n], names.index(n))))
    return StateGraph(
        start_at=start_at,
        nodes=ordered,
        edges=edges,
        width=int(total_width),
        height=int(total_height),
        saga=is_saga_definition(doc),
    )


class _Router:
    """Edge routes through the empty gaps of the grid (see the module docstring)."""

    def __init__(
        self,
        nodes: Mapping[str, GraphNode],
        cells: Mapping[tuple[int, int], list[str]],
        column_x: Sequence[int],
        column_width: Sequence[int],
    ) -> None:
        self.nodes, self.cells = nodes, cells
        # gap g lies left of column g (gap len(columns) is right of the last column)
        self.gap_x = [cx - COLUMN_GAP / 2 for cx in column_x]
        self.gap_x.append(column_x[-1] + column_width[-1] + COLUMN_GAP / 2 if column_x else 0)

    def _gaps(self, a: GraphNode, b: GraphNode) -> tuple[int, int]:
        """The column gaps an edge runs along: leave on the side facing the target."""
        if a.column < b.column:
            return a.column + 1, b.column
        if a.column > b.column:
            return a.column, b.column + 1
        return a.column, a.column  # same column: around its left side

    def route(self, raw: Sequence[tuple[str, str, str]]) -> tuple[GraphEdge, ...]:
        plans: list[tuple[str, str, str, tuple[int, int] | None]] = []
        users: dict[int, list[int]] = {}
        for index, (source, target, kind) in enumerate(raw):
            a, b = self.nodes[source], self.nodes[target]
            gaps = None if b.layer == a.layer + 1 else self._gaps(a, b)
            plans.append((source, target, kind, gaps))
            for gap in set(gaps or ()):
                users.setdefault(gap, []).append(index)
        lane: dict[tuple[int, int], float] = {}
        for gap, members in users.items():
            members.sort(key=lambda i: (self.nodes[raw[i][0]].layer, self.nodes[raw[i][1]].layer))
            half = (COLUMN_GAP / 2 - LANE) // LANE
            for k, i in enumerate(members):
                offset = (k - (len(members) - 1) / 2) * LANE
                lane[(gap, i)] = max(-half * LANE, min(half * LANE, offset))
        edges = []
        for index, (source, target, kind, gaps) in enumerate(plans):
            a, b = self.nodes[source], self.nodes[target]
            if gaps is None:
                points: tuple[Point, ...] = (
                    (a.x + a.width / 2, a.y + a.height),
                    (b.x + b.width / 2, b.y),
                )
            else:
                gx1 = self.gap_x[gaps[0]] + lane[(gaps[0], index)]
                gx2 = self.gap_x[gaps[1]] + lane[(gaps[1], index)]
                start = self._port(a, gx1, leaving=True)
                end = self._port(b, gx2, leaving=False)
                middle: list[Point] = [(gx1, start[-1][1])]
                if gaps[0] != gaps[1]:  # cross the columns in between along the band above b
                    band = b.y - ROW_GAP / 2
                    middle += [(gx1, band), (gx2, band)]
                middle.append((gx2, end[0][1]))
                points = (*start, *middle, *end)
            edges.append(GraphEdge(source, target, kind, _simplify(points)))
        return tuple(edges)

    def _port(self, node: GraphNode, gap_x: float, *, leaving: bool) -> list[Point]:
        """From a node's side to ``gap_x`` (or back): straight out when nothing of its cell is in
        the way, else through the empty band below (leaving) or above (arriving) its row."""
        members = self.cells[(node.column, node.layer)]
        towards_right = gap_x > node.x
        outermost = members[-1] if towards_right else members[0]
        cy = node.y + node.height / 2
        if outermost == node.name:
            side = node.x + node.width if towards_right else node.x
            path: list[Point] = [(side, cy)]
        else:
            cx = node.x + node.width / 2
            edge_y = node.y + node.height if leaving else node.y
            band = edge_y + ROW_GAP / 2 if leaving else edge_y - ROW_GAP / 2
            path = [(cx, edge_y), (cx, band)]
        return path if leaving else path[::-1]


def _simplify(points: Sequence[Point]) -> tuple[Point, ...]:
    """Drop repeated points and the middle of three collinear ones."""
    out: list[Point] = []
    for p in points:
        if out and p == out[-1]:
            continue
        if len(out) >= 2:
            (x0, y0), (x1, y1) = out[-2], out[-1]
            if (x0 == x1 == p[0]) or (y0 == y1 == p[1]):
                out[-1] = p
                continue
        out.append(p)
    return tuple(out)
