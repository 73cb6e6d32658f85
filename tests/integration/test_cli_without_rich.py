"""The embeddable core runs where Rich is not installed: ``outbox_relay`` and the ``relay`` and
``outbox`` verbs, in a subprocess whose meta path refuses ``rich`` (as a missing install does),
on a pipe and on a terminal (a pty: the one place the console helper would reach for Rich)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

# Refuses `rich` the way a missing install does, runs the CLI, then says whether anything
# imported it anyway (through a path that swallowed the ImportError, say).
WITHOUT_RICH = """
import sys

class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "rich":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
import outbox_relay
from outbox_relay import enqueue, migrate, outbox_status  # the embeddable API itself
from saga_outbox.cli import main
code = main(sys.argv[1:])
sys.stderr.write(f"rich imported: {sorted(m for m in sys.modules if m.partition('.')[0] == 'rich')}\\n")
sys.exit(code)
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "DATABASE_URL")}
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    env.update(extra)
    return env


def _run(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-c", WITHOUT_RICH, *argv],
        cwd=ROOT,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert "rich imported: []" in proc.stderr, proc.stderr
    return proc


def _run_on_a_terminal(*argv: str) -> str:
    """The command with its stdout on a pty (so isatty() is true), Rich refused."""
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", WITHOUT_RICH, *argv],
            cwd=ROOT,
            env=_env(TERM="xterm-256color"),
            stdout=secondary,
            stderr=subprocess.PIPE,
            text=True,
            timeout=180,
        )
        os.close(secondary)
        secondary = -1
        chunks = []
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the writer closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        if secondary != -1:
            os.close(secondary)
        os.close(primary)
    assert proc.returncode == 0, proc.stderr
    assert "rich imported: []" in proc.stderr, proc.stderr
    return b"".join(chunks).decode().replace("\r\n", "\n")


def test_relay_and_outbox_verbs_work_without_rich(database_url: str, schema: str, aws_env: None) -> None:
    import boto3
    from moto.server import ThreadedMotoServer

    db = ["--database-url", database_url, "--schema", schema]
    assert "is at version" in _run("outbox", "migrate", *db).stdout
    for i in range(3):
        _run("outbox", "enqueue", *db, "--event-type", "Probe", "--aggregate", f"a{i}", "--payload", "{}")

    status = json.loads(_run("outbox", "status", *db, "--json").stdout)
    assert status["pending"] == 3
    plain = _run("outbox", "status", *db).stdout
    assert plain.splitlines()[:3] == ["pending    3", "published  0", "dead       0"]
    # a terminal is where the helper would want Rich: without it, the same plain text
    on_terminal = _run_on_a_terminal("outbox", "status", *db)
    assert on_terminal.splitlines()[:3] == plain.splitlines()[:3]  # (the age line moves on)
    assert "\x1b" not in on_terminal

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        sqs: Any = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
        queue_url = sqs.create_queue(QueueName="no-rich.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        drained = json.loads(
            _run(
                "relay",
                *db,
                "--queue-url",
                queue_url,
                "--endpoint-url",
                endpoint,
                "--no-listen",
                "--drain",
                "30",
            ).stdout
        )
        assert drained["published"] == 3, drained
    finally:
        server.stop()
    after = json.loads(_run("outbox", "status", *db, "--json").stdout)
    assert after["pending"] == 0 and after["published"] == 3
