"""What people expect of the CLI's output: every verb that prints a table has ``--json``; a
terminal gets Rich, ``NO_COLOR`` and a pipe get the plain text (a real pty, not a mock)."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.__main__ import main as bench_main
from examples.orders.__main__ import main as orders_main
from outbox_relay.cli import build_parser
from saga_outbox.cli import main

ROOT = Path(__file__).resolve().parents[2]
APP = "examples.orders.app:app"

#: the verbs that print a table (or a report of label/value lines) and so take --json
TABLE_VERBS = {
    "outbox status",
    "outbox replay",
    "workflows list",
    "executions list",
    "executions show",
    "executions history",
    "cost",
    "reconcile",
    "local run",
    "local up",
    "chaos",
}
#: the others, and what they print instead
NO_TABLE = {
    "relay": "nothing until it stops; --drain prints one JSON object",
    "outbox migrate": "one line: the schema version",
    "outbox enqueue": "the event id",
    "outbox retry-dead": "one line: how many went back to pending",
    "outbox purge": "one line: how many were purged",
    "workflows asl": "the ASL, which is JSON",
    "executions serve": "the page's URL",
}


def _leaves(
    parser: argparse.ArgumentParser, prefix: str = ""
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield prefix.strip(), parser
        return
    for name, child in subs[0].choices.items():
        yield from _leaves(child, f"{prefix} {name}")


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings}


def test_every_verb_is_classified_and_every_table_verb_has_json() -> None:
    verbs = dict(_leaves(build_parser()))
    unclassified = set(verbs) - TABLE_VERBS - set(NO_TABLE)
    assert not unclassified, (
        f"does it print a table? add it to TABLE_VERBS (with --json) or NO_TABLE: {unclassified}"
    )
    assert set(verbs) >= TABLE_VERBS, TABLE_VERBS - set(verbs)
    missing = sorted(v for v in TABLE_VERBS if "--json" not in _options(verbs[v]))
    assert not missing, f"print a table but have no --json: {missing}"


@pytest.mark.parametrize(
    ("run", "argv"),
    [(orders_main, ["demo", "--help"]), (bench_main, ["--help"])],
    ids=["python -m examples.orders demo", "python -m bench"],
)
def test_the_repository_commands_that_print_tables_have_json(run: object, argv: list[str]) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        run(argv)  # type: ignore[operator]
    assert "--json" in out.getvalue()


@pytest.mark.parametrize(
    ("argv", "shape"),
    [
        (["workflows", "list", "--app", APP], list),
        (["cost", "--app", APP, "--events-per-second", "10"], dict),
    ],
    ids=["workflows list", "cost"],
)
def test_json_of_the_verbs_that_need_no_database(
    argv: list[str], shape: type, capsys: pytest.CaptureFixture[str]
) -> None:
    """(The verbs that need a database or a stack: tests/integration/test_cli_output.py.)"""
    assert main([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert isinstance(data, shape) and data


def test_workflows_list_json_names_each_workflow_with_its_steps_and_events(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["workflows", "list", "--app", APP, "--json"]) == 0
    listed = {w["name"]: w for w in json.loads(capsys.readouterr().out)}
    saga = listed["OrderSaga"]
    assert saga["kind"] == "STANDARD" and saga["steps"][0] == "ReserveInventory"
    assert "OrderPlaced" in saga["started_by"]


def _on_a_pty(argv: list[str], **env: str) -> str:
    """``saga-outbox ARGV`` with stdout on a pseudo-terminal: what a person at a shell sees."""
    primary, secondary = pty.openpty()
    full_env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")}
    full_env.update({"TERM": "xterm-256color", "COLUMNS": "160", **env})
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "saga_outbox.cli", *argv],
            cwd=ROOT,
            env=full_env,
            stdout=secondary,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
        os.close(secondary)
        secondary = -1
        chunks = []
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO once the writer's side is closed
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        if secondary != -1:
            os.close(secondary)
        os.close(primary)
    assert proc.returncode == 0, proc.stderr
    return b"".join(chunks).decode().replace("\r\n", "\n")


def test_a_terminal_gets_rich_and_no_color_or_a_pipe_the_plain_text() -> None:
    argv = ["workflows", "list", "--app", APP]
    piped = subprocess.run(
        [sys.executable, "-m", "saga_outbox.cli", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.splitlines()[1].startswith("--------")  # the plain formatter's rule
    rich = _on_a_pty(argv)
    assert "─" in rich and "--------" not in rich and "OrderSaga" in rich
    assert _on_a_pty(argv, NO_COLOR="1") == piped.stdout
    assert _on_a_pty(argv, TERM="dumb") == piped.stdout
