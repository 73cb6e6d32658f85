"""Faults of a chaos run that last a while, scheduled at seeded points of the production:
SQS outages of the relays' client (connection refused, expired credentials), relays
SIGSTOPped past their lease and resumed, and the database faults of :mod:`.dbfaults`.

The relays are subprocesses that are killed and restarted, so an SQS outage is a *switch file*
that every relay's :class:`outbox_relay.testing.FaultySqsClient` reads before each call
(:func:`request_fault_from`): a restarted relay is inside the outage too, as it would be.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .dbfaults import ForeignTransaction, OutboxLocker, count_relay_log_faults
from .history import History

if TYPE_CHECKING:
    from .options import ChaosOptions
    from .relays import Relays

__all__ = ["Disruptions", "request_fault_from"]

log = logging.getLogger("saga_outbox.local.chaos")

OUTAGE_KINDS = ("connection", "credentials")


def request_fault_from(path: str, endpoint_url: str) -> Any:
    """The relay side of the switch: a ``request_fault`` callback raising what botocore raises
    when the endpoint refuses connections, or SQS's answer to an expired session token."""
    from outbox_relay.testing import client_error, endpoint_unreachable

    cache: dict[str, Any] = {"at": 0.0, "kind": None}

    def fault(_call: int) -> BaseException | None:
        now = time.monotonic()
        if now - cache["at"] > 0.1:  # one stat per 100 ms, not one per call
            try:
                cache["kind"] = Path(path).read_text().strip() or None
            except OSError:
                cache["kind"] = None
            cache["at"] = now
        if cache["kind"] == "connection":
            return endpoint_unreachable(endpoint_url)
        if cache["kind"] == "credentials":
            return client_error("ExpiredToken", 403, "The security token included in the request is expired")
        return None

    return fault


class Disruptions:
    """Owns the long faults of one run; the harness calls :meth:`at` with its progress."""

    def __init__(
        self,
        opts: ChaosOptions,
        *,
        history: History,
        relays: Relays,
        engine: sa.Engine,
        schema: str,
        run_id: str,
        log_dir: Path,
    ) -> None:
        self.opts, self.history, self.relays = opts, history, relays
        self.switch = log_dir / "sqs-fault"
        self._log_dir = log_dir
        self._rng = random.Random(opts.seed + 5)
        # outages and stalls at seeded points of the production (fractions of its units)
        self._plan: list[tuple[float, str, int]] = sorted(
            [(self._rng.uniform(0.1, 0.8), "outage", i) for i in range(opts.sqs_outages)]
            + [(self._rng.uniform(0.05, 0.95), "stall", i) for i in range(opts.stalls)]
        )
        self._timers: list[threading.Timer] = []
        self._lock = threading.Lock()
        self._threads: list[Any] = []
        if opts.table_lock_interval_seconds > 0:
            self._threads.append(
                OutboxLocker(
                    engine,
                    schema=schema,
                    interval=opts.table_lock_interval_seconds,
                    hold=opts.table_lock_seconds,
                    seed=opts.seed + 6,
                    history=history,
                )
            )
        if opts.foreign_transaction_seconds > 0:
            self._threads.append(
                ForeignTransaction(
                    engine, run_id=run_id, hold=opts.foreign_transaction_seconds, history=history
                )
            )

    def start(self) -> None:
        self.switch.write_text("")
        for t in self._threads:
            try:
                t.start()
            except sa.exc.SQLAlchemyError as exc:  # e.g. no CREATEDB privilege on a given server
                log.warning("%s not started: %s", t.name, exc)
                self.history.count(f"{t.name}_unavailable")

    def at(self, fraction: float) -> None:
        while self._plan and self._plan[0][0] <= fraction:
            _, what, i = self._plan.pop(0)
            if what == "outage":
                self._outage(OUTAGE_KINDS[i % len(OUTAGE_KINDS)])
            elif not self._stall():
                self._plan.append((fraction + 0.01, what, i))  # no relay ready: a little later
                self._plan.sort()
                return

    def _outage(self, kind: str) -> None:
        seconds = self.opts.sqs_outage_seconds * self._rng.uniform(0.7, 1.3)
        self.switch.write_text(kind)
        self.history.count("sqs_outages_connection" if kind == "connection" else "sqs_credentials_expiries")
        self.history.count("sqs_outage_seconds", round(seconds))

        def end() -> None:
            with contextlib.suppress(OSError):
                self.switch.write_text("")

        self._later(seconds, end)

    def _stall(self) -> bool:
        # past the lease for sure, with room: the rows must be re-claimed by another relay
        seconds = self.opts.lease_seconds * self._rng.uniform(1.6, 3.0)
        resume = self.relays.stall_one()
        if resume is None:
            return False
        self.history.count("relay_stalls")
        self._later(seconds, resume)
        return True

    def _later(self, seconds: float, fn: Any) -> None:
        timer = threading.Timer(seconds, fn)
        timer.daemon = True
        with self._lock:
            self._timers.append(timer)
        timer.start()

    def stop(self) -> None:
        """End every fault now (outage over, stalled relays resumed, locks released)."""
        with self._lock:
            timers, self._timers = self._timers, []
        for t in timers:
            t.cancel()
            t.function(*t.args, **t.kwargs)  # resume / end now rather than never (idempotent)
        for th in self._threads:
            if th.is_alive() or isinstance(th, ForeignTransaction):
                th.stop()
        with contextlib.suppress(OSError):
            os.unlink(self.switch)

    def figures(self) -> dict[str, int]:
        """What the relays met of these faults, read from their logs."""
        return count_relay_log_faults(self._log_dir)
