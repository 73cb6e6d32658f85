"""Threads around a relay: pipelines kept alive by a supervisor, the NOTIFY listener, and the
handle a host application holds (stop, liveness for health checks)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from . import metrics as m
from .writer import notify_channel

if TYPE_CHECKING:
    from .relay import Relay

__all__ = ["RelayThread", "run_in_threads", "supervise"]

log = logging.getLogger("outbox_relay")


class PipelineCounter:
    """How many pipelines are inside their serving loop right now (for liveness)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def __enter__(self) -> None:
        with self._lock:
            self.value += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.value -= 1


class Waker:
    """How idle pipelines are woken. A NOTIFY wakes one of them (a commit is about one claim's
    work); a wake that finds nobody idle is kept, so the next pipeline to go idle looks again
    at once instead of sleeping a poll interval (an Event cleared after its wait lost a wake
    that came in between). Stopping wakes all.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending = False
        self._everyone = False

    def wake(self, *, everyone: bool = False) -> None:
        with self._cond:
            self._pending = True
            if everyone:
                self._everyone = True
                self._cond.notify_all()
            else:
                self._cond.notify()

    def wait(self, timeout: float) -> bool:
        """Wait for a wake or ``timeout``; True if woken."""
        with self._cond:
            woken = self._cond.wait_for(lambda: self._pending, timeout)
            if not self._everyone:
                self._pending = False
            return woken

    def reset(self) -> None:
        """Forget a stop's wake-everyone (a relay run again after a stop)."""
        with self._cond:
            self._pending = self._everyone = False


class PassesInFlight:
    """The relay's passes that hold leased rows (between a claim that returned rows and their
    mark), and how many rows they hold. The claim scans a bounded window of the oldest pending
    rows; once the siblings hold that many, an empty claim may only mean the window was full of
    their leases, not that the outbox is empty. Such a pipeline waits for a sibling to mark
    instead of ending a drain or sleeping a poll interval. Below that, an empty claim is real,
    and waiting on the siblings would only wake it for more empty claims."""

    def __init__(self, window: int) -> None:
        self._window = window  # the claim's scan window
        self._cond = threading.Condition()
        self._rows = 0
        self._finished = 0

    @contextmanager
    def holding(self, rows: int) -> Iterator[None]:
        with self._cond:
            self._rows += rows
        try:
            yield
        finally:
            with self._cond:
                self._rows -= rows
                self._finished += 1
                self._cond.notify_all()

    def wait_for_one(self, timeout: float) -> bool:
        """If the passes in flight hold a scan window of rows, wait until one of them
        finishes (True) or ``timeout`` passes; False at once otherwise."""
        with self._cond:
            if self._rows < self._window:
                return False
            seen = self._finished
            return self._cond.wait_for(lambda: self._finished != seen, timeout)


def supervise(
    serve: Callable[[], None],
    *,
    stop: threading.Event,
    name: str,
    restart_delay: Callable[[], float],
    on_restart: Callable[[], None],
) -> None:
    """Run ``serve`` until ``stop`` is set; if it ever raises (a bug, an error no layer below
    classified), log it and start it again after a backoff. ``serve`` handles the errors it
    knows (database, publisher) itself; this is the last line, so that one surprise cannot
    leave a relay running with fewer pipelines, or none, while its host looks healthy."""
    while not stop.is_set():
        try:
            serve()
            return
        except Exception:
            delay = restart_delay()
            log.exception("relay pipeline %s died; restarting it in %.1fs", name, delay)
            on_restart()
            stop.wait(delay)


def run_in_threads(work: Callable[[], None], count: int) -> None:
    """Run ``work`` in ``count`` threads, the caller's included; the first error any of them
    raised is raised here, after all have ended."""
    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            work()
        except BaseException as exc:  # surfaced below, in the caller's thread
            errors.append(exc)

    helpers = [
        threading.Thread(target=guarded, name=f"outbox-pipeline-{i}", daemon=True) for i in range(1, count)
    ]
    for t in helpers:
        t.start()
    try:
        work()
    finally:
        for t in helpers:
            t.join()
    if errors:
        raise errors[0]


class RelayThread:
    """The handle :meth:`Relay.start_in_thread` returns: ``stop()`` drains and joins;
    ``is_healthy()`` and ``alive_pipelines`` serve a host's health check."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=relay.run_forever, args=(self._stop,), name="outbox-relay", daemon=True
        )
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def alive_pipelines(self) -> int:
        """Pipelines currently serving (a restarting one is briefly not counted)."""
        return self.relay.alive_pipelines

    def is_healthy(self) -> bool:
        """True while the relay runs with every pipeline serving and has not been stopped."""
        return (
            self.alive
            and not self._stop.is_set()
            and self.relay.alive_pipelines == self.relay.options.pipelines
        )

    def stop(self, timeout: float | None = 30.0) -> None:
        self._stop.set()
        self.relay.wake(everyone=True)
        self._thread.join(timeout)


class Listener(threading.Thread):
    """LISTEN on a dedicated connection; a NOTIFY from a committing writer wakes the relay."""

    def __init__(self, relay: Relay, stop: threading.Event) -> None:
        super().__init__(name="outbox-listen", daemon=True)
        self.relay = relay
        self._stop_event = stop
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    def run(self) -> None:
        import psycopg

        url = self.relay.engine.url.set(drivername="postgresql")
        dsn = url.render_as_string(hide_password=False)
        channel = notify_channel(self.relay.options.schema)
        while not (self._halt.is_set() or self._stop_event.is_set()):
            try:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute(f'LISTEN "{channel}"')
                    while not (self._halt.is_set() or self._stop_event.is_set()):
                        for _ in conn.notifies(timeout=0.5, stop_after=1):
                            self.relay.wake()
            except psycopg.Error as exc:
                log.warning("LISTEN connection lost (polling meanwhile): %s", exc)
                self.relay.metrics.count(m.LISTEN_LOST)
                self._halt.wait(1.0)
