"""The one plain-text table formatter of the package (CLI lists, demo, chaos, bench)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["format_pairs", "format_table"]


def format_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], *, align: str | None = None, indent: str = ""
) -> str:
    """Columns separated by two spaces with a dashed rule under the headers. ``align`` has one
    character per column, ``<`` (left, the default) or ``>`` (right, for numbers)."""
    cells = [[str(c) for c in row] for row in rows]
    align = align or "<" * len(headers)
    if len(align) != len(headers) or set(align) - {"<", ">"}:
        raise ValueError(f"align must have one '<' or '>' per column, got {align!r}")
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(values: Sequence[str]) -> str:
        text = "  ".join(
            v.rjust(w) if a == ">" else v.ljust(w) for v, w, a in zip(values, widths, align, strict=True)
        )
        return indent + text.rstrip()

    return "\n".join([line(list(headers)), indent + "  ".join("-" * w for w in widths), *map(line, cells)])


def format_pairs(pairs: Sequence[tuple[str, Any]], *, indent: str = "  ") -> str:
    """``label  value`` lines with the labels padded to one width (a report's summary)."""
    width = max((len(k) for k, _ in pairs), default=0)
    return "\n".join(f"{indent}{k.ljust(width)}  {v}" for k, v in pairs)
