"""The embedded PostgreSQL leaves nothing behind unless told where to keep its files.

Each case runs in its own process (the server and its clean-up live as long as a process) with
TMPDIR pointed at a fresh directory, so what is left there afterwards is what a run left.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # starts a real PostgreSQL (about a second each)

ROOT = Path(__file__).resolve().parents[2]

START = """
import logging, sys
import sqlalchemy as sa
from outbox_relay.embedded import embedded_postgres_url
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
url = embedded_postgres_url(sys.argv[1] or None)
with sa.create_engine(url).connect() as conn:
    assert conn.exec_driver_sql("select pg_current_xact_id()").scalar()
if sys.argv[2] == "fail":
    raise RuntimeError("the caller failed after the start")
"""

# initdb creates files, then the start fails: what it created must go too.
FAILED_START = """
import sys
import embedded_postgres
from outbox_relay.embedded import embedded_postgres_url

def get_server(path, cleanup_mode):
    (path / "PG_VERSION").write_text("18")
    (path / "log").write_text("FATAL:  could not bind to the socket")
    raise OSError("pg_ctl: could not start server")

embedded_postgres.get_server = get_server
embedded_postgres_url()
"""


def _run(code: str, *argv: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TMPDIR": str(tmp)}
    return subprocess.run(
        [sys.executable, "-c", code, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def _left(tmp: Path) -> list[str]:
    # The wheel keeps a lock file (a few bytes) in the user runtime dir, which falls back to a
    # folder in TMPDIR when XDG_RUNTIME_DIR is unset; any data directory would show here.
    return sorted(p.name for p in tmp.iterdir() if not p.name.startswith("runtime-"))


@pytest.mark.parametrize("outcome", ["ok", "fail"])
def test_a_temp_server_is_stopped_and_removed_at_exit(tmp_path: Path, outcome: str) -> None:
    proc = _run(START, "", outcome, tmp=tmp_path)
    assert proc.returncode == (0 if outcome == "ok" else 1), proc.stderr
    assert _left(tmp_path) == []


def test_a_failed_start_removes_what_it_created_and_says_why(tmp_path: Path) -> None:
    proc = _run(FAILED_START, tmp=tmp_path)
    assert proc.returncode == 1
    assert "ConfigurationError: the embedded PostgreSQL did not start" in proc.stderr
    assert "could not bind to the socket" in proc.stderr
    assert _left(tmp_path) == []


def test_a_given_data_dir_is_kept_and_named(tmp_path: Path) -> None:
    data = tmp_path / "keep" / "pgdata"
    proc = _run(START, str(data), "ok", tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"embedded PostgreSQL data kept in {data}" in proc.stderr
    assert (data / "PG_VERSION").exists()
    assert not (data / "postmaster.pid").exists()  # stopped at exit all the same
