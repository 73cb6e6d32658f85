"""Replay: re-publish events already published, chosen by id or time range, event type and
aggregate type, to a destination you name, resumable from a checkpoint.

Rows come from the live table (published rows that still have their payload) and from
``outbox_archive`` (rows :func:`~outbox_relay.operations.purge_published` archived with
``archive=True``); a row purged without archive has lost its payload and cannot be replayed
(:func:`count_replay` counts those as ``unavailable``).

Pages are read in id order with keyset pagination (``id > checkpoint``). Id order is commit
order per aggregate by construction (the writer serializes an aggregate's writers), so it is
the per-aggregate order the consumers need, it walks both tables' id indexes, and a page
interleaves many aggregates, which lets a FIFO batch carry ten groups instead of one.
Each page is delivered, then the run's checkpoint row advances, in one transaction.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from ._replay_destinations import (
    HandlerDestination,
    QueueDestination,
    ReplayDestination,
    ReplayedEvent,
    WorkflowDestination,
    replay_execution_name,
)
from .db import TIMEOUTS, connect_engine, sqlstate, translate
from .exceptions import (
    ConfigurationError,
    OutboxError,
    ReplayDeliveryError,
    ReplayRunBusyError,
    ReplayRunMismatchError,
)
from .operations import PURGED_PAYLOAD
from .schema import DEFAULT_SCHEMA, check_schema
from .sending import Pacer

__all__ = [
    "HandlerDestination",
    "QueueDestination",
    "ReplayCounts",
    "ReplayDestination",
    "ReplayOptions",
    "ReplayProgress",
    "ReplayResult",
    "ReplaySelection",
    "ReplayedEvent",
    "WorkflowDestination",
    "count_replay",
    "replay",
    "replay_execution_name",
]

_RUN_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def _names(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    out = tuple(value)
    for v in out:
        if not isinstance(v, str) or not v:
            raise ConfigurationError(f"{what} must be non-empty strings, got {v!r}")
    return tuple(sorted(set(out)))


def _instant(value: Any, what: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ConfigurationError(f"{what} must be a timezone-aware datetime, got {value!r}")
    return value


def _row_id(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{what} must be a row id (an integer >= 1), got {value!r}")
    return value


@dataclass(frozen=True, kw_only=True)
class ReplaySelection:
    """Which published events a run replays: every bound is optional and they combine (AND).
    Times compare with the row's ``created_at`` (``since`` inclusive, ``until`` exclusive);
    ids are the outbox row ids (both inclusive); empty type tuples mean every type."""

    since: datetime | None = None
    until: datetime | None = None
    from_id: int | None = None
    to_id: int | None = None
    event_types: tuple[str, ...] = ()
    aggregate_types: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        since, until = _instant(self.since, "since"), _instant(self.until, "until")
        if since and until and since >= until:
            raise ConfigurationError(
                f"since ({since.isoformat()}) must be before until ({until.isoformat()})"
            )
        lo, hi = _row_id(self.from_id, "from_id"), _row_id(self.to_id, "to_id")
        if lo is not None and hi is not None and lo > hi:
            raise ConfigurationError(f"from_id ({lo}) must not be above to_id ({hi})")
        object.__setattr__(self, "event_types", _names(self.event_types, "event_types"))
        object.__setattr__(self, "aggregate_types", _names(self.aggregate_types, "aggregate_types"))

    def as_dict(self) -> dict[str, Any]:
        """JSON shape stored with the run (and compared on resume)."""
        d = asdict(self)
        for k in ("since", "until"):
            d[k] = d[k].isoformat() if d[k] else None
        d["event_types"], d["aggregate_types"] = list(self.event_types), list(self.aggregate_types)
        return d

    def where(self) -> tuple[str, dict[str, Any]]:
        """SQL conditions (besides the keyset ``id > %(after)s``) and their parameters."""
        # one row per (event, destination): replay reads the rows of the SQS queue the
        # dispatcher consumes, so an event routed to other destinations too is read once
        conds: list[str] = ["destination = 'sqs'"]
        params: dict[str, Any] = {}
        for col, op, key in (
            ("id", ">=", "from_id"),
            ("id", "<=", "to_id"),
            ("created_at", ">=", "since"),
            ("created_at", "<", "until"),
        ):
            if getattr(self, key) is not None:
                conds.append(f"{col} {op} %({key})s")
                params[key] = getattr(self, key)
        for col, key in (("event_type", "event_types"), ("aggregate_type", "aggregate_types")):
            if getattr(self, key):
                conds.append(f"{col} = ANY(%({key})s)")
                params[key] = list(getattr(self, key))
        return "".join(f" AND {c}" for c in conds), params


@dataclass(frozen=True, kw_only=True)
class ReplayOptions:
    """``run_id`` names the run: the same id resumes it after its checkpoint. ``rate`` caps
    events per second (None: as fast as the destination takes them). A page is one
    transaction; with a rate cap it shrinks to about a second's worth so no transaction stays
    open long."""

    run_id: str
    schema: str = DEFAULT_SCHEMA
    page_size: int = 500
    rate: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.run_id, str) or not _RUN_ID.match(self.run_id):
            raise ConfigurationError(
                f"run id {self.run_id!r} is invalid: use 1-64 letters, digits and . _ : -"
            )
        check_schema(self.schema)
        if (
            isinstance(self.page_size, bool)
            or not isinstance(self.page_size, int)
            or not 1 <= self.page_size <= 10_000
        ):
            raise ConfigurationError(f"page_size must be an integer from 1 to 10000, got {self.page_size!r}")
        if self.rate is not None and (isinstance(self.rate, bool) or not self.rate > 0):
            raise ConfigurationError(
                f"rate must be a positive number of events per second, got {self.rate!r}"
            )

    @property
    def effective_page_size(self) -> int:
        return self.page_size if self.rate is None else max(10, min(self.page_size, int(self.rate)))


@dataclass(frozen=True, kw_only=True)
class ReplayCounts:
    """What a selection holds after a checkpoint: ``replayable`` rows (live with payload, or
    archived) by event type, and ``unavailable`` ones (purged without archive: no payload)."""

    replayable: int
    unavailable: int
    by_event_type: dict[str, int] = field(default_factory=dict)
    after_id: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class ReplayProgress:
    run_id: str
    delivered: int  # by this invocation
    total: int | None  # to deliver by this invocation (None: not counted)
    last_id: int


@dataclass(frozen=True, kw_only=True)
class ReplayResult:
    run_id: str
    destination: str
    delivered: int  # by this invocation
    delivered_by_run: int  # by every invocation of the run
    resumed_from_id: int  # 0: a fresh run
    last_id: int
    finished: bool
    unavailable: int | None
    seconds: float

    @property
    def events_per_s(self) -> float:
        return self.delivered / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "events_per_s": round(self.events_per_s, 1)}


_COLUMNS = (
    "id, event_id::text AS event_id, event_type, aggregate_type, aggregate_key, created_at, "
    "headers::text AS headers, payload::text AS payload"
)
_LIVE = f"state = 'published' AND payload <> '{PURGED_PAYLOAD}'::jsonb"


def _page_sql(s: str, where: str) -> str:
    # each branch stops at the page size on its own id index; DISTINCT ON guards against a row
    # present in both (purge moves it in one statement, so one snapshot never sees it twice)
    branch = "SELECT {c} FROM {t} WHERE id > %(after)s AND {w} ORDER BY id LIMIT %(n)s"
    live = branch.format(c=_COLUMNS, t=f'"{s}".outbox', w=_LIVE + where)
    archived = branch.format(c=_COLUMNS, t=f'"{s}".outbox_archive', w="true" + where)
    return f"SELECT DISTINCT ON (id) * FROM (({live}) UNION ALL ({archived})) AS page ORDER BY id LIMIT %(n)s"


def count_replay(
    bind: Any, *, selection: ReplaySelection, schema: str = DEFAULT_SCHEMA, after_id: int = 0
) -> ReplayCounts:
    """Count what ``selection`` would replay after row ``after_id`` (a dry run)."""
    s = check_schema(schema)
    where, params = selection.where()
    params["after"] = after_id
    sql = (
        f'SELECT event_type, count(*) FROM (SELECT event_type FROM "{s}".outbox WHERE id > %(after)s '
        f'AND {_LIVE}{where} UNION ALL SELECT event_type FROM "{s}".outbox_archive '
        f"WHERE id > %(after)s{where}) AS x GROUP BY event_type ORDER BY event_type"
    )
    lost = (
        f"SELECT count(*) FROM \"{s}\".outbox o WHERE o.id > %(after)s AND o.state = 'published' "
        f"AND o.payload = '{PURGED_PAYLOAD}'::jsonb{where} AND NOT EXISTS "
        f'(SELECT 1 FROM "{s}".outbox_archive a WHERE a.id = o.id)'
    )
    engine, owned = connect_engine(bind)
    try:
        with engine.connect() as conn:
            by_type = {str(t): int(n) for t, n in conn.exec_driver_sql(sql, params).all()}
            unavailable = int(conn.exec_driver_sql(lost, params).scalar_one())
    except sa_exc.SQLAlchemyError as exc:
        raise translate(exc, schema=s) from exc
    finally:
        if owned:
            engine.dispose()
    return ReplayCounts(
        replayable=sum(by_type.values()), unavailable=unavailable, by_event_type=by_type, after_id=after_id
    )


def replay(
    bind: Any,
    *,
    destination: ReplayDestination,
    selection: ReplaySelection,
    options: ReplayOptions,
    on_progress: Callable[[ReplayProgress], None] | None = None,
    count_first: bool = True,
) -> ReplayResult:
    """Deliver every selected event after the run's checkpoint to ``destination``, page by page.

    A new ``options.run_id`` starts a run; a known one resumes after its checkpoint (and must
    name the same selection and destination). Each page is delivered and the checkpoint
    advanced in one transaction, so a crash at any point re-delivers at most the page in
    flight: with the replay-scoped dedup ids and execution names that re-delivery is dropped
    by SQS (inside its 5-minute window) and Step Functions (Standard), and a
    :class:`HandlerDestination`'s writes roll back with the checkpoint."""
    s = options.schema
    engine, owned = connect_engine(bind)
    started = time.perf_counter()
    try:
        destination.check()
        resumed_from, done_before, finished = _open_run(
            engine, s, options.run_id, selection, destination.name
        )
        if finished:
            return ReplayResult(
                run_id=options.run_id,
                destination=destination.name,
                delivered=0,
                delivered_by_run=done_before,
                resumed_from_id=resumed_from,
                last_id=resumed_from,
                finished=True,
                unavailable=None,
                seconds=0.0,
            )
        counts = (
            count_replay(engine, selection=selection, schema=s, after_id=resumed_from)
            if count_first
            else None
        )
        total = counts.replayable if counts else None
        pacer = Pacer(options.rate) if options.rate else None
        where, params = selection.where()
        sql = _page_sql(s, where)
        params["n"] = options.effective_page_size
        last_id, delivered = resumed_from, 0
        if on_progress:
            on_progress(ReplayProgress(run_id=options.run_id, delivered=0, total=total, last_id=last_id))
        while True:
            n, last_id = _one_page(engine, s, sql, params, options.run_id, last_id, destination, pacer)
            if n == 0:
                break
            delivered += n
            if on_progress:
                on_progress(
                    ReplayProgress(run_id=options.run_id, delivered=delivered, total=total, last_id=last_id)
                )
        return ReplayResult(
            run_id=options.run_id,
            destination=destination.name,
            delivered=delivered,
            delivered_by_run=done_before + delivered,
            resumed_from_id=resumed_from,
            last_id=last_id,
            finished=True,
            unavailable=counts.unavailable if counts else None,
            seconds=time.perf_counter() - started,
        )
    finally:
        if owned:
            engine.dispose()


def _open_run(
    engine: sa.Engine, s: str, run_id: str, selection: ReplaySelection, dest: str
) -> tuple[int, int, bool]:
    wanted = selection.as_dict()
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                f'INSERT INTO "{s}".replay_checkpoints (run_id, selection, destination) '
                "VALUES (%(r)s, %(sel)s, %(d)s) ON CONFLICT (run_id) DO NOTHING",
                {"r": run_id, "sel": json.dumps(wanted), "d": dest},
            )
            row = conn.exec_driver_sql(
                f"SELECT selection, destination, last_id, replayed, finished_at IS NOT NULL "
                f'FROM "{s}".replay_checkpoints WHERE run_id = %(r)s',
                {"r": run_id},
            ).one()
    except sa_exc.SQLAlchemyError as exc:
        raise translate(exc, schema=s) from exc
    stored, stored_dest, last_id, replayed, finished = row
    if stored != wanted or stored_dest != dest:
        diff = {k: (stored.get(k), v) for k, v in wanted.items() if stored.get(k) != v}
        if stored_dest != dest:
            diff["destination"] = (stored_dest, dest)
        shown = ", ".join(f"{k}: run has {a!r}, given {b!r}" for k, (a, b) in diff.items())
        raise ReplayRunMismatchError(
            f"replay run {run_id!r} exists with another selection or destination ({shown}): "
            "resume it with the same options, or pick a new --run-id"
        )
    return int(last_id), int(replayed), bool(finished)


def _one_page(
    engine: sa.Engine,
    s: str,
    sql: str,
    params: dict[str, Any],
    run_id: str,
    after: int,
    destination: ReplayDestination,
    pacer: Pacer | None,
) -> tuple[int, int]:
    """Deliver the page after ``after`` and advance the checkpoint in one transaction; returns
    (events delivered, new last id). 0 events: the run is finished (and marked so)."""
    cp = f'"{s}".replay_checkpoints'
    try:
        with engine.begin() as conn:
            try:
                # NOWAIT: a second process on the same run fails at once instead of queueing
                # behind the first and then re-delivering its pages
                held = conn.exec_driver_sql(
                    f"SELECT last_id FROM {cp} WHERE run_id = %(r)s FOR UPDATE NOWAIT", {"r": run_id}
                ).scalar_one()
            except sa_exc.OperationalError as exc:
                if sqlstate(exc) in TIMEOUTS:
                    raise ReplayRunBusyError(
                        f"replay run {run_id!r} is being run by another process right now"
                    ) from exc
                raise
            if held != after:
                raise ReplayRunBusyError(
                    f"replay run {run_id!r} moved on to row {held} under this process (which was at "
                    f"{after}): another process runs it"
                )
            rows = conn.exec_driver_sql(sql, {**params, "after": after}).all()
            if not rows:
                conn.exec_driver_sql(
                    f"UPDATE {cp} SET finished_at = now(), updated_at = now() WHERE run_id = %(r)s",
                    {"r": run_id},
                )
                return 0, after
            events = [
                ReplayedEvent(
                    run_id=run_id,
                    row_id=int(r.id),
                    event_id=r.event_id,
                    event_type=r.event_type,
                    aggregate_type=r.aggregate_type,
                    aggregate_key=r.aggregate_key,
                    occurred_at=r.created_at,
                    payload_json=r.payload,
                    headers_json=r.headers or "{}",
                )
                for r in rows
            ]
            if pacer is not None:
                for _ in events:
                    pacer.wait()
            _deliver(conn, destination, events)
            last = events[-1].row_id
            conn.exec_driver_sql(
                f"UPDATE {cp} SET last_id = %(last)s, replayed = replayed + %(n)s, updated_at = now() "
                "WHERE run_id = %(r)s",
                {"last": last, "n": len(events), "r": run_id},
            )
            return len(events), last
    except sa_exc.SQLAlchemyError as exc:
        raise translate(exc, schema=s) from exc


def _deliver(conn: sa.Connection, destination: ReplayDestination, events: list[ReplayedEvent]) -> None:
    try:
        destination.deliver(conn, events)
    except (OutboxError, sa_exc.SQLAlchemyError):
        raise
    except Exception as exc:  # the app's handler: name the page, keep its error as the cause
        raise ReplayDeliveryError(
            f"{destination.name} failed on rows {events[0].row_id}..{events[-1].row_id} "
            f"(first event {events[0].event_id}): {type(exc).__name__}: {exc}"
        ) from exc
