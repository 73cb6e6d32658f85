"""Database faults of a chaos run, injected from the harness process.

- :class:`OutboxLocker`: now and then a chaos connection holds the outbox table (EXCLUSIVE:
  reads go on, every claim's ``FOR UPDATE`` and every mark's ``UPDATE`` wait) or just the rows
  relays hold leases on (only their marks wait). Relays that run with a short ``lock_timeout``
  or ``statement_timeout`` (see :data:`RELAY_TIMEOUTS`) get 55P03 / 57014 in claim and mark: the
  errors item 5 of issue 11 saw killing relay threads.
- :class:`ForeignTransaction`: a long write transaction in *another database* of the same
  server. A relay that waited for a cluster-wide horizon (``pg_snapshot_xmin``) would stop
  publishing for its whole length; per-aggregate order by construction must not care.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import threading
from pathlib import Path

import sqlalchemy as sa

from .history import History

__all__ = ["RELAY_TIMEOUTS", "ForeignTransaction", "OutboxLocker", "count_relay_log_faults", "relay_timeouts"]

log = logging.getLogger("saga_outbox.local.chaos")

#: libpq ``options`` per relay index (cycled): a lock_timeout shorter than the chaos locks,
#: a statement_timeout shorter than them, and one relay without either (it just waits)
RELAY_TIMEOUTS = ("-c lock_timeout=300", "-c statement_timeout=800", "")

# what the relays log when they meet one (outbox_relay.db.translate puts the SQLSTATE in the text)
_LOG_FAULTS = {
    "relay_lock_timeouts": re.compile(r"55P03"),
    "relay_statement_timeouts": re.compile(r"57014"),
    "relay_requests_failed_connection": re.compile(r"publish request failed \(connection\)"),
    "relay_requests_failed_credentials": re.compile(r"publish request failed \(credentials\)"),
}


def relay_timeouts(index: int, enabled: bool) -> str:
    return RELAY_TIMEOUTS[index % len(RELAY_TIMEOUTS)] if enabled else ""


def count_relay_log_faults(log_dir: Path) -> dict[str, int]:
    """What the relay processes met, read from their logs (they die by SIGKILL, so they cannot
    report it themselves): the count shows the fault reached the code under test."""
    counts = dict.fromkeys(_LOG_FAULTS, 0)
    for path in sorted(log_dir.glob("chaos-relay-*.log")):
        with contextlib.suppress(OSError), path.open(errors="replace") as f:
            for line in f:
                for name, pattern in _LOG_FAULTS.items():
                    if pattern.search(line):
                        counts[name] += 1
    return counts


class _Loop(threading.Thread):
    def __init__(self, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.halt = threading.Event()

    def stop(self) -> None:
        self.halt.set()
        self.join(10)


class OutboxLocker(_Loop):
    """Every ``interval`` seconds (seeded jitter) hold, for ``hold`` seconds, either the whole
    outbox table or the rows currently leased by relays (which their next mark must update)."""

    def __init__(
        self, engine: sa.Engine, *, schema: str, interval: float, hold: float, seed: int, history: History
    ) -> None:
        super().__init__("chaos-outbox-locker")
        self._engine, self._schema, self._interval, self._hold = engine, schema, interval, hold
        self._rng = random.Random(seed)
        self._history = history

    def run(self) -> None:
        while not self.halt.wait(self._interval * self._rng.uniform(0.5, 1.5)):
            whole = self._rng.random() < 0.5
            try:
                with self._engine.connect() as c:
                    c.exec_driver_sql("SET application_name = 'chaos-locker'")
                    if whole:
                        c.exec_driver_sql(f'LOCK TABLE "{self._schema}".outbox IN EXCLUSIVE MODE')
                        self._history.count("outbox_table_locks")
                    else:
                        n = len(
                            c.exec_driver_sql(
                                f"SELECT id FROM \"{self._schema}\".outbox WHERE state = 'pending' "
                                "AND lease_expires_at > now() FOR UPDATE SKIP LOCKED"
                            ).all()
                        )
                        self._history.count("leased_row_locks")
                        self._history.count("leased_rows_locked", n)
                    self.halt.wait(self._hold)
                    c.rollback()
            except sa.exc.SQLAlchemyError as exc:  # chaos must not stop the run
                log.warning("outbox locker: %s", exc)


class ForeignTransaction(_Loop):
    """Creates a database of its own on the server and keeps a write transaction open in it
    for ``hold`` seconds, again and again with short pauses, until stopped; drops it after."""

    def __init__(self, engine: sa.Engine, *, run_id: str, hold: float, history: History) -> None:
        super().__init__("chaos-foreign-transaction")
        self._admin = engine
        self._hold = hold
        self._history = history
        self.database = f"chaos_other_{run_id}"
        self._engine: sa.Engine | None = None

    def start(self) -> None:
        with self._admin.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.exec_driver_sql(f'CREATE DATABASE "{self.database}"')
        self._history.count("foreign_databases_created")
        url = self._admin.url.set(database=self.database)
        self._engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        with self._engine.begin() as c:
            c.exec_driver_sql("CREATE TABLE ledger (id bigserial PRIMARY KEY, note text)")
        super().start()

    def run(self) -> None:
        assert self._engine is not None
        while not self.halt.is_set():
            try:
                with self._engine.connect() as c:
                    # a real xid: the write makes this transaction hold back every horizon
                    c.exec_driver_sql("INSERT INTO ledger (note) VALUES ('held open by chaos')")
                    self._history.count("foreign_write_transactions")
                    held = 0.0
                    while held < self._hold and not self.halt.wait(0.5):
                        held += 0.5
                    self._history.count("foreign_write_transaction_seconds", round(held))
                    c.commit()
            except sa.exc.SQLAlchemyError as exc:
                log.warning("foreign transaction: %s", exc)
            self.halt.wait(1.0)

    def stop(self) -> None:
        if self.is_alive():
            super().stop()
        if self._engine is not None:
            self._engine.dispose()
        with (
            contextlib.suppress(sa.exc.SQLAlchemyError),
            self._admin.connect().execution_options(isolation_level="AUTOCOMMIT") as c,
        ):
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
