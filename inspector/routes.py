"""Edge routes through the empty gaps of a laid-out grid (see :mod:`.graph`): two points between
neighbouring rows (drawn as a curve through the empty band between them), otherwise a polyline
along the column gaps and the row bands, so no edge passes behind a node it does not connect."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .graph import GraphNode

__all__ = ["COLUMN_GAP", "LANE", "NODE_GAP", "NODE_HEIGHT", "ROW_GAP", "Point", "Router", "row_top"]

NODE_HEIGHT = 40  # a row's height; smaller nodes (a Choice helper) sit centred in it
ROW_GAP = 40
COLUMN_GAP = 56  # room for several edges side by side in one gap
NODE_GAP = 24  # between nodes that share a row and a column
LANE = 6  # distance between edges that share a gap

Point = tuple[float, float]


def row_top(layer: int) -> int:
    """Top of a row of the grid."""
    return ROW_GAP + layer * (NODE_HEIGHT + ROW_GAP)


class Router:
    """Routes for the edges of one layout (see the module docstring)."""

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

    def route(self, raw: Sequence[tuple[str, str, str]]) -> list[tuple[Point, ...]]:
        """One route per edge of ``raw`` (source, target, kind), in its order."""
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
        for index, (source, target, _kind, gaps) in enumerate(plans):
            a, b = self.nodes[source], self.nodes[target]
            if gaps is None:
                points: tuple[Point, ...] = (
                    (a.x + a.width / 2, a.y + a.height),
                    (b.x + b.width / 2, b.y),
                )
            else:
                gx1 = self.gap_x[gaps[0]] + lane[(gaps[0], index)]
                gx2 = self.gap_x[gaps[1]] + lane[(gaps[1], index)]
                start = self._port(a, gx1, leaving=True, target=b.name)
                end = self._port(b, gx2, leaving=False)
                middle: list[Point] = [(gx1, start[-1][1])]
                if gaps[0] != gaps[1]:  # cross the columns in between along the band above b
                    band = row_top(b.layer) - ROW_GAP / 2
                    middle += [(gx1, band), (gx2, band)]
                middle.append((gx2, end[0][1]))
                points = (*start, *middle, *end)
            edges.append(_simplify(points))
        return edges

    def _port(
        self, node: GraphNode, gap_x: float, *, leaving: bool, target: str | None = None
    ) -> list[Point]:
        """From a node's side to ``gap_x`` (or back): straight out when nothing of its cell is in
        the way, else through the empty band below (leaving) or above (arriving) its row.

        An edge also leaves through the band when the cell across the gap, in the same row, holds
        another node than its target: edges arriving at that node come in at this very height, and
        two runs on one line would look like one edge joining the wrong states."""
        members = self.cells[(node.column, node.layer)]
        towards_right = gap_x > node.x
        outermost = members[-1] if towards_right else members[0]
        cy = node.y + node.height / 2
        across = self.cells.get((node.column + (1 if towards_right else -1), node.layer), [])
        shared_line = leaving and any(name != target for name in across)
        if outermost == node.name and not shared_line:
            side = node.x + node.width if towards_right else node.x
            path: list[Point] = [(side, cy)]
        else:
            cx = node.x + node.width / 2
            edge_y = node.y + node.height if leaving else node.y
            # the middle of the empty band, measured from the row (a small node sits inside it)
            top = row_top(node.layer)
            band = top + NODE_HEIGHT + ROW_GAP / 2 if leaving else top - ROW_GAP / 2
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
