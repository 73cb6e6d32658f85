"""The relay subprocesses of a chaos run (started, killed and restarted by a supervisor) and
the harness's periodic fault threads."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .dbfaults import relay_timeouts
from .history import History

if TYPE_CHECKING:
    from .harness import ChaosOptions

__all__ = ["Periodic", "Relays"]

log = logging.getLogger("saga_outbox.local.chaos")


@dataclass
class _Worker:
    index: int
    generation: int
    proc: subprocess.Popen[bytes]
    log: Any
    how: str | None = None  # the kill we aimed at it
    stalled: bool = False  # SIGSTOPped, not yet resumed
    started: float = field(default_factory=time.monotonic)


@dataclass
class Relays:
    """Starts, kills and restarts the relay subprocesses; records every exit."""

    opts: ChaosOptions
    history: History
    database_url: str
    queue_url: str
    endpoint_url: str
    schema: str
    log_dir: Path
    rng: random.Random
    #: the SQS fault switch every relay reads (see .disruptions); None: no outages
    fault_file: Path | None = None
    workers: list[_Worker] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name="chaos-relays", daemon=True)
        self._generation = 0

    def _spawn(self, index: int) -> _Worker:
        self._generation += 1
        name = f"chaos-relay-{index}-{self._generation}"
        cmd = [
            sys.executable,
            "-m",
            "saga_outbox.local.chaos.relay_worker",
            "--database-url",
            self.database_url,
            "--queue-url",
            self.queue_url,
            "--endpoint-url",
            self.endpoint_url,
            "--schema",
            self.schema,
            "--name",
            name,
            "--seed",
            str(self.opts.seed * 1000 + self._generation),
            "--entry-failure-rate",
            str(self.opts.entry_failure_rate),
            "--throttle-rate",
            str(self.opts.throttle_rate),
            "--lease-seconds",
            str(self.opts.lease_seconds),
            "--mode",
            self.opts.relay_mode,
            "--crash-after-mark-rate",
            str(self.opts.crash_after_mark_rate),
            "--max-attempts",
            str(self.opts.relay_max_attempts),
            "--pg-options",
            relay_timeouts(index, self.opts.db_timeouts),
        ]
        if self.fault_file is not None:
            cmd += ["--fault-file", str(self.fault_file)]
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "local"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        logf = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 (closed on exit)
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env)
        return _Worker(index, self._generation, proc, logf)

    def start(self) -> None:
        with self._lock:
            self.workers = [self._spawn(i) for i in range(self.opts.relays)]
        self._thread.start()

    def _supervise(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                for i, w in enumerate(self.workers):
                    code = w.proc.poll()
                    if code is None:
                        continue
                    w.log.close()
                    if code == -signal.SIGKILL:
                        self.history.record_kill(
                            signal="SIGKILL", how=w.how or "self", relay=w.index, generation=w.generation
                        )
                    self.history.relay_exits.append({"relay": w.index, "code": code})
                    self.workers[i] = self._spawn(w.index)
            self._stop.wait(0.1)

    def kill_one(self, how: str) -> bool:
        """``external``: SIGKILL now (claim, send or mark, wherever it is); ``after_send``: arm the
        worker to SIGKILL itself after its next successful SendMessageBatch, before the mark."""
        with self._lock:
            now = time.monotonic()  # a worker still importing has no SIGUSR1 handler yet
            alive = self._ready(now)
            if not alive:
                return False
            w = self.rng.choice(alive)
            w.how = how
            with contextlib.suppress(ProcessLookupError):
                w.proc.send_signal(signal.SIGKILL if how == "external" else signal.SIGUSR1)
            return True

    def _ready(self, now: float) -> list[_Worker]:
        return [
            w
            for w in self.workers
            if w.proc.poll() is None and w.how is None and not w.stalled and now - w.started > 3
        ]

    def stall_one(self) -> Any:
        """SIGSTOP a running relay wherever it is (after a claim, between its deadline check
        and the HTTP send, inside a mark); return the function that resumes it, or None when
        no relay is ready. Its leases expire meanwhile and other relays take the rows over."""
        with self._lock:
            ready = self._ready(time.monotonic())
            if not ready:
                return None
            w = self.rng.choice(ready)
            w.stalled = True
            with contextlib.suppress(ProcessLookupError):
                w.proc.send_signal(signal.SIGSTOP)

        def resume() -> None:
            with self._lock:
                if w.stalled:
                    w.stalled = False
                    with contextlib.suppress(ProcessLookupError):
                        w.proc.send_signal(signal.SIGCONT)

        return resume

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        with self._lock:
            for w in self.workers:
                if w.proc.poll() is None:
                    if w.stalled:  # a stopped process would not act on SIGTERM
                        w.stalled = False
                        with contextlib.suppress(ProcessLookupError):
                            w.proc.send_signal(signal.SIGCONT)
                    w.proc.terminate()
            for w in self.workers:
                try:
                    w.proc.wait(15)
                except subprocess.TimeoutExpired:
                    w.proc.kill()
                    w.proc.wait(5)
                if w.proc.returncode == -signal.SIGKILL and w.how:
                    self.history.record_kill(
                        signal="SIGKILL", how=w.how, relay=w.index, generation=w.generation
                    )
                w.log.close()


class Periodic(threading.Thread):
    def __init__(self, interval: float, fn: Any, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._interval, self._fn, self._halt = interval, fn, threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self._interval):
            try:
                self._fn()
            except Exception as exc:  # chaos must not stop the run
                log.warning("%s failed: %s", self.name, exc)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)
