"""saga_outbox._console: plain where nobody watches (pipes, files, NO_COLOR, TERM=dumb, --json),
Rich on a terminal; the plain forms are exactly the one plain formatter's text."""

from __future__ import annotations

import importlib.util
import io

import pytest

from saga_outbox._console import Console, Progress, capture, progress_on, wants_rich
from saga_outbox._tables import format_pairs, format_table

HEADERS = ["name", "count"]
ROWS = [("relay [Errno 111]", 3), ("dispatcher", 12_000)]


class _Tty(io.StringIO):
    """A stream that says it is a terminal, as sys.stdout does in a shell."""

    def isatty(self) -> bool:
        return True


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _print_all(console: Console) -> None:
    console.line("title")
    console.table(HEADERS, ROWS, align="<>")
    console.pairs([("pending", 1), ("published", 22)])
    console.table(HEADERS, ROWS, indent="  ", title="Section")


PLAIN = "\n".join(
    [
        "title",
        format_table(HEADERS, ROWS, align="<>"),
        format_pairs([("pending", 1), ("published", 22)]),
        "Section",
        format_table(HEADERS, ROWS, indent="  "),
        "",
    ]
)


@pytest.mark.parametrize(
    ("stream", "force_terminal", "environ", "json"),
    [
        (io.StringIO(), None, {}, False),  # a pipe or file
        (_Tty(), False, {}, False),  # told it is no terminal
        (_Tty(), None, {"NO_COLOR": "1"}, False),
        (_Tty(), True, {"NO_COLOR": "1"}, False),  # NO_COLOR wins over a forced terminal
        (_Tty(), True, {"TERM": "dumb"}, False),
        (_Tty(), True, {}, True),  # --json
    ],
    ids=["pipe", "not-a-terminal", "no-color", "no-color-forced", "term-dumb", "json"],
)
def test_plain_output_is_the_plain_formatters_text(
    stream: io.StringIO, force_terminal: bool | None, environ: dict[str, str], json: bool
) -> None:
    console = Console(stream, force_terminal=force_terminal, environ=environ, json=json)
    assert not console.rich
    _print_all(console)
    assert stream.getvalue() == PLAIN
    assert "\x1b" not in stream.getvalue()


def test_a_terminal_gets_rich_tables_with_cells_taken_literally() -> None:
    stream = _Tty()
    console = Console(stream, environ={})
    assert console.rich
    _print_all(console)
    out = stream.getvalue()
    assert out != PLAIN
    assert "─" in out  # Rich's rule under the headers, not the plain dashes
    assert "[Errno 111]" in out  # data, never Rich markup (which would have eaten it)
    assert "12000" in out and "published" in out and "Section" in out


def test_rich_is_not_chosen_when_it_cannot_be_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(name: str, *args: object) -> None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    monkeypatch.setattr(importlib.util, "find_spec", refuse)
    assert not wants_rich(_Tty(), environ={})
    stream = _Tty()
    _print_all(Console(stream, environ={}))
    assert stream.getvalue() == PLAIN


def test_a_bad_align_is_refused_on_both_paths() -> None:
    for stream in (io.StringIO(), _Tty()):
        with pytest.raises(ValueError, match="align must have one"):
            Console(stream, environ={}).table(HEADERS, ROWS, align="<^")


def test_plain_progress_prints_a_line_at_first_then_every_n_seconds() -> None:
    """The chaos harness's lines as they were: ``  [ 972s] events 58300/100000 (consumed ...)``."""
    clock, out = _Clock(), io.StringIO()
    started = clock.now - 972
    bar = Console(out).progress(total=100_000, description="events", started=started, clock=clock)
    bar.update(completed=58_300, detail="(consumed 58000), sagas 10/1000, kills 3")
    clock.now += 5
    bar.advance(100)  # within 10 s of the last line: nothing
    bar.note("settling: pending 3")  # shares the same clock: nothing either
    clock.now += 6
    bar.advance(100)
    bar.log("checking")  # a log line is never held back
    bar.close()
    assert out.getvalue().splitlines() == [
        "  [   972s] events 58300/100000 (consumed 58000), sagas 10/1000, kills 3",
        "  [   983s] events 58500/100000 (consumed 58000), sagas 10/1000, kills 3",
        "  [   983s] checking",
    ]
    # byte for byte the f-string the harness printed before the helper
    now, events_done, total = started + 972, 58_300, 100_000
    assert out.getvalue().splitlines()[0] == (
        f"  [{now - started:6.0f}s] events {events_done}/{total} (consumed 58000), sagas 10/1000, kills 3"
    )


def test_plain_progress_without_a_period_prints_only_its_log_lines() -> None:
    out = io.StringIO()
    with Console(out).progress(total=2, description="bench", every=None) as bar:
        bar.log("[bench] raw_sql ...", stamp=False)
        bar.advance()
        bar.log("[bench] raw_sql done in 1.0s", stamp=False)
        bar.advance()
    assert out.getvalue() == "[bench] raw_sql ...\n[bench] raw_sql done in 1.0s\n"


def test_rich_progress_draws_a_bar_with_counts_and_logs_above_it() -> None:
    out = _Tty()
    with Console(out, environ={}).progress(total=10, description="events") as bar:
        bar.advance(3)
        bar.update(detail="kills 2")
        bar.log("produced")
        bar.note("settling: pending 4")  # the bar's detail, not a line of its own
        assert bar.detail == "settling: pending 4"
    text = out.getvalue()
    assert "━" in text and "3/10" in text and "produced" in text
    assert "\r" in text or "\x1b[" in text  # redrawn in place, not one line per update


def test_progress_on_none_is_silent_and_a_stream_gets_a_console() -> None:
    with progress_on(None, total=5, description="x") as bar:
        bar.advance(5)
        bar.log("nobody hears this")
    assert bar.completed == 5
    out = io.StringIO()
    with progress_on(out, total=5, description="orders") as bar:
        bar.advance(2)
    assert out.getvalue().endswith("orders 2/5\n")
    with pytest.raises(ValueError, match="every must be at least 0"):
        Progress(None, total=1, description="x", every=-1)


def test_status_line_is_silent_on_a_pipe_and_redrawn_on_a_terminal() -> None:
    pipe, tty = io.StringIO(), _Tty()
    for stream in (pipe, tty):
        with Console(stream, environ={}).status_line() as status:
            status.update("outbox pending 3  queue 0")
    assert pipe.getvalue() == ""
    assert "outbox pending 3" in tty.getvalue()


def test_capture_returns_the_plain_text_without_the_last_newline() -> None:
    text = capture(lambda c: c.table(HEADERS, ROWS, align="<>"))
    assert text == format_table(HEADERS, ROWS, align="<>")
