"""The one console helper of the commands: plain or Rich output, progress, tables.

Rich (the ``local`` extra) is used only when it can help a person watching: it is importable,
the stream is a terminal, ``NO_COLOR`` is unset (https://no-color.org), ``TERM`` is not
``dumb`` and the command was not asked for ``--json``. Everything else (a pipe, a file, CI
logs, a test's ``StringIO``) gets the plain text the commands always printed, through
:mod:`saga_outbox._tables`, the one plain formatter. Rich is imported only on the Rich path,
so the embeddable core (``outbox_relay`` and its verbs) runs where it is not installed.

The long-running commands and any new one take a progress handle the same way::

    with Console(sys.stderr).progress(total=n, description="rows") as bar:
        for batch in batches:
            bar.advance(len(batch))
"""

from __future__ import annotations

import importlib.util
import io
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

from ._tables import format_pairs, format_table

__all__ = ["Console", "Progress", "StatusLine", "capture", "progress_on", "wants_rich"]


def _rich_importable() -> bool:
    try:
        return importlib.util.find_spec("rich") is not None
    except (ImportError, ValueError):  # a meta-path finder that refuses it, a broken install
        return False


def wants_rich(
    stream: TextIO | None,
    *,
    json: bool = False,
    force_terminal: bool | None = None,
    environ: Mapping[str, str] | None = None,
) -> bool:
    """True when Rich should draw on ``stream``. ``force_terminal`` stands in for the TTY test
    (``True``: treat the stream as a terminal, ``False``: as a pipe); ``NO_COLOR``, ``TERM=dumb``,
    ``json`` and a missing Rich still win over it."""
    env = os.environ if environ is None else environ
    if json or stream is None or env.get("NO_COLOR") or env.get("TERM") == "dumb":
        return False
    if force_terminal is None:
        isatty = getattr(stream, "isatty", None)
        force_terminal = bool(isatty and isatty())
    return force_terminal and _rich_importable()


class Console:
    """Where one command writes: ``line``, ``table``, ``pairs``, ``progress``, ``status_line``.
    The plain forms print exactly what ``format_table``/``format_pairs`` return."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        json: bool = False,
        force_terminal: bool | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.rich = wants_rich(self.stream, json=json, force_terminal=force_terminal, environ=environ)
        self._rich_console: Any = None

    @property
    def rich_console(self) -> Any:
        """The ``rich.console.Console`` on this stream (the Rich path only)."""
        if self._rich_console is None:
            from rich.console import Console as RichConsole

            # force_terminal: the decision is made above (an injected TTY in tests included)
            self._rich_console = RichConsole(file=self.stream, force_terminal=True, highlight=False)
        return self._rich_console

    def line(self, text: str = "", *, style: str | None = None) -> None:
        """One line of text; ``style`` (e.g. ``"bold green"``) colours it on the Rich path only."""
        if self.rich:
            self.rich_console.print(text, style=style, markup=False, highlight=False)
        else:
            print(text, file=self.stream, flush=True)

    def table(
        self,
        headers: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        align: str | None = None,
        indent: str = "",
        title: str | None = None,
        styles: Mapping[str, str] | None = None,
    ) -> None:
        """A table; plain: the ``title`` line (not indented) then :func:`format_table`. ``styles``
        colours the cells of a given text on the Rich path (``{"PASS": "green"}``)."""
        if not self.rich:
            if title is not None:
                print(title, file=self.stream)
            print(format_table(headers, rows, align=align, indent=indent), file=self.stream, flush=True)
            return
        from rich import box
        from rich.table import Table
        from rich.text import Text

        align = align or "<" * len(headers)
        format_table(headers, [], align=align)  # the same validation of ``align`` on both paths
        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
        for header, a in zip(headers, align, strict=True):
            table.add_column(Text(header), justify="right" if a == ">" else "left", overflow="fold")
        for row in rows:
            # Text, not str: a cell such as "[Errno 111]" is data, never Rich markup
            table.add_row(*(Text(str(c), style=(styles or {}).get(str(c), "")) for c in row))
        self._print_indented(table, indent)

    def pairs(self, pairs: Sequence[tuple[str, Any]], *, indent: str = "  ") -> None:
        """``label  value`` lines (:func:`format_pairs`); Rich: a two-column grid."""
        if not self.rich:
            print(format_pairs(pairs, indent=indent), file=self.stream, flush=True)
            return
        from rich.table import Table
        from rich.text import Text

        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column()
        for label, value in pairs:
            grid.add_row(Text(label), Text(str(value)))
        self._print_indented(grid, indent)

    def _print_indented(self, renderable: Any, indent: str) -> None:
        from rich.padding import Padding

        self.rich_console.print(Padding(renderable, (0, 0, 0, len(indent))) if indent else renderable)

    def progress(
        self,
        *,
        total: float | None,
        description: str,
        every: float | None = 10.0,
        started: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> Progress:
        """A progress handle (also a context manager). Plain: a line
        ``  [  12s] <description> <done>/<total> <detail>`` at the first update and then at most
        every ``every`` seconds (``None``: only the ``log`` lines); Rich: a bar with counts, rate
        and elapsed time. ``started`` (a ``clock()`` reading) is where the elapsed seconds count
        from (default: now)."""
        return Progress(self, total=total, description=description, every=every, started=started, clock=clock)

    def status_line(self) -> StatusLine:
        """A line redrawn in place on the Rich path (``update(text)``); plain: silent, so a log
        file is not filled with one line per refresh."""
        return StatusLine(self)


class Progress:
    """See :meth:`Console.progress`: ``advance(n)``, ``update(...)``, ``log(message)``,
    ``close()``. With ``console=None`` every call is a no-op (a caller passed ``progress=None``)."""

    def __init__(
        self,
        console: Console | None,
        *,
        total: float | None,
        description: str,
        every: float | None = 10.0,
        started: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if every is not None and every < 0:
            raise ValueError(f"every must be at least 0 seconds, got {every!r}")
        self.console = console
        self.total = total
        self.completed = 0.0
        self.description = description
        self.detail = ""
        self._every = every
        self._clock = clock
        self._started = clock() if started is None else started
        self._last_line: float | None = None
        self._bar: Any = None
        self._task: Any = None
        if console is not None and console.rich:
            self._bar = _rich_progress(console.rich_console)
            self._task = self._bar.add_task(description, total=total, detail="")
            self._bar.start()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def advance(self, n: float = 1) -> None:
        self.update(completed=self.completed + n)

    def update(
        self,
        *,
        completed: float | None = None,
        total: float | None = None,
        description: str | None = None,
        detail: str | None = None,
    ) -> None:
        """Set what changed; ``detail`` is free text after the counts (``consumed 12, kills 3``)."""
        if completed is not None:
            self.completed = completed
        if total is not None:
            self.total = total
        if description is not None:
            self.description = description
        if detail is not None:
            self.detail = detail
        if self._bar is not None:
            self._bar.update(
                self._task,
                completed=self.completed,
                total=self.total,
                description=self.description,
                detail=self.detail,
            )
            return
        if self._due():
            counts = (
                f"{_count(self.completed)}/{_count(self.total)}"
                if self.total is not None
                else _count(self.completed)
            )
            self.log(f"{self.description} {counts}" + (f" {self.detail}" if self.detail else ""))

    def note(self, message: str) -> None:
        """A passing state (``settling: pending 3``): the bar's detail on the Rich path; plain,
        a line on the same clock as the counts lines (at most one every ``every`` seconds)."""
        if self._bar is not None:
            self.update(detail=message)
        elif self._due():
            self.log(message)

    def _due(self) -> bool:
        if self.console is None or self._every is None:
            return False
        now = self._clock()
        if self._last_line is not None and now - self._last_line <= self._every:
            return False
        self._last_line = now
        return True

    def log(self, message: str, *, stamp: bool = True) -> None:
        """``  [  12s] message`` (``stamp=False``: the message alone): a line of its own, above
        the bar on the Rich path."""
        if self.console is None:
            return
        text = f"  [{self._clock() - self._started:6.0f}s] {message}" if stamp else message
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=self.console.stream, flush=True)

    def flush(self) -> None:
        """Plain: the counts line now, whatever the clock says (a run's last state)."""
        if self._bar is None and self.console is not None:
            self._last_line = None
            self.update()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _count(value: float | None) -> str:
    return "?" if value is None else f"{value:g}" if value != int(value) else str(int(value))


def _rich_progress(console: Any) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.progress import Progress as RichProgress
    from rich.text import Text

    class RateColumn(ProgressColumn):
        """Items per second over Rich's recent samples (the overall rate once finished)."""

        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.0f}/s" if speed else "-/s", style="progress.data.speed")

    return RichProgress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[detail]}", markup=False),
        console=console,
        # what else writes to the bar's stream (a worker's log line) goes above the bar instead of
        # tearing it; the other stream is left alone, it may be a pipe (`chaos > report.txt`)
        redirect_stdout=console.file is sys.stdout,
        redirect_stderr=console.file is sys.stderr,
    )


class StatusLine:
    """See :meth:`Console.status_line`."""

    def __init__(self, console: Console) -> None:
        self._live: Any = None
        if console.rich:
            from rich.live import Live
            from rich.text import Text

            self._text = Text
            self._live = Live(Text(""), console=console.rich_console, refresh_per_second=4, transient=True)
            self._live.start()

    def __enter__(self) -> StatusLine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, text: str) -> None:
        if self._live is not None:
            self._live.update(self._text(text))

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def capture(render: Callable[[Console], None]) -> str:
    """What ``render`` prints on a plain console, as a string without the final newline (the
    ``format_*`` functions that tests and callers keep using)."""
    buf = io.StringIO()
    render(Console(buf, force_terminal=False))
    return buf.getvalue().removesuffix("\n")


def progress_on(
    where: Console | TextIO | None, *, total: float | None, description: str, **options: Any
) -> Progress:
    """:meth:`Console.progress` for a caller's ``progress=`` argument: a :class:`Console`, a
    stream (Rich when it is a terminal) or ``None`` (a handle that prints nothing)."""
    console = where if isinstance(where, Console) or where is None else Console(where)
    return Progress(console, total=total, description=description, **options)
