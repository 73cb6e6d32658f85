"""A SIGTERM to ``saga-outbox chaos`` (a CI timeout, ``kill``) must stop what the run started:
its relay processes used to outlive it, with the embedded PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc for the run's child processes")
def test_sigterm_stops_the_relay_processes_of_a_chaos_run(database_url: str, aws_env: None) -> None:
    chaos = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "saga_outbox.cli",
            "chaos",
            "--app",
            "examples.orders.app:app",
            "--events",
            "100000",
            "--sagas",
            "0",
            "--kills",
            "0",
            "--stalls",
            "0",
            "--sqs-outages",
            "0",
            "--database-url",
            database_url,
            "--json",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        relays: set[int] = set()
        while time.monotonic() < deadline and not relays:
            time.sleep(1)
            assert chaos.poll() is None, "the run ended before its relays started"
            relays = {
                p for p in _children(chaos.pid) if "relay_worker" in Path(f"/proc/{p}/cmdline").read_text()
            }
        assert relays, "no relay process appeared"
        chaos.send_signal(signal.SIGTERM)
        assert chaos.wait(120) == 128 + signal.SIGTERM
        time.sleep(1)
        assert not [p for p in relays if _alive(p)], "relay processes outlived the chaos run"
    finally:
        if chaos.poll() is None:
            chaos.kill()
            chaos.wait()
