"""README's "CLI reference" is one table, and every command and option in it is one the CLI has."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from examples.orders.__main__ import main as orders_main
from outbox_relay.cli import build_parser

README = Path(__file__).resolve().parents[2] / "README.md"
# a placeholder or an option ends the verbs: `executions show ARN`, `outbox status [--json]`
_NOT_A_VERB = re.compile(r"^(-|\[|\(|<|[A-Z])")


def cli_reference() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## CLI reference\n", 1)[1].split("\n## ", 1)[0]
    return section.strip("\n").splitlines()


def table_rows() -> list[str]:
    lines = cli_reference()
    first = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(first, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[first + 2 : end]  # after the header and its |---| rule


def test_the_cli_reference_is_one_table() -> None:
    lines = cli_reference()
    rows = [i for i, line in enumerate(lines) if line.startswith("|")]
    assert rows == list(range(rows[0], rows[-1] + 1)), "a blank or other line splits the table"
    assert lines[rows[0] + 1] == "|---|---|"
    assert len(table_rows()) >= 10


def commands() -> list[tuple[str, list[str], list[str]]]:
    """(program, verbs, options) for every command in the table's first column; a command
    written as `executions history ARN` after a `/` belongs to the program of its row."""
    found = []
    for row in table_rows():
        first_cell = re.split(r"(?<!\\)\|", row)[1]
        program = None
        for span in re.findall(r"`([^`]+)`", first_cell):
            words = span.split()
            if words[0] == "saga-outbox":
                program, words = "saga-outbox", words[1:]
            elif words[:3] == ["python", "-m", "examples.orders"]:
                program, words = "python -m examples.orders", words[3:]
            assert program is not None, f"no program for {span!r} in {row!r}"
            verbs = []
            for word in words:
                if _NOT_A_VERB.match(word):
                    break
                verbs.append(word)
            found.append((program, verbs, re.findall(r"--[a-z][a-z-]*", span)))
    return found


def _help(run: Callable[[Sequence[str]], object], argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exited:
        run(argv)
    assert exited.value.code == 0, (argv, out.getvalue())
    return out.getvalue()


def test_every_command_in_the_table_exists_with_its_options() -> None:
    listed = commands()
    assert (
        "saga-outbox",
        ["local", "up"],
        ["--app", "--port", "--inspector-port", "--database-url", "--data-dir", "--json"],
    ) in listed
    assert ("python -m examples.orders", ["place"], ["--database-url", "--inspector-url", "--fail"]) in listed
    runners = {"saga-outbox": build_parser().parse_args, "python -m examples.orders": orders_main}
    for program, verbs, options in listed:
        assert verbs, f"{program}: no command named"
        text = _help(runners[program], [*verbs, "--help"])
        usage = " ".join(text.split())  # argparse wraps the usage line
        assert f"usage: {program} {' '.join(verbs)} " in usage
        missing = [o for o in options if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", text)]
        assert not missing, f"`{program} {' '.join(verbs)}` has no {missing}"
