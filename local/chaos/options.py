"""What a chaos run is told: sizes, seeds and the rate or schedule of every fault."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ChaosOptions"]

_RATES = (
    "entry_failure_rate",
    "throttle_rate",
    "step_failure_rate",
    "step_lost_response_rate",
    "step_timeout_rate",
    "step_exhausted_rate",
    "step_idempotency_down_rate",
    "step_duplicate_rate",
    "duplicate_delivery_rate",
    "dispatcher_crash_rate",
    "late_resend_rate",
    "crash_after_mark_rate",
)


@dataclass(frozen=True, kw_only=True)
class ChaosOptions:
    events: int = 100_000
    sagas: int = 1_000
    seed: int = 1
    relays: int = 3
    kills: int = 20
    entry_failure_rate: float = 0.05
    throttle_rate: float = 0.05
    step_failure_rate: float = 0.05
    step_lost_response_rate: float = 0.03
    step_timeout_rate: float = 0.02
    #: a compensable action commits, then every attempt's response is lost or times out: the
    #: saga must undo the step itself (unknown outcome, DESIGN.md §3.4)
    step_exhausted_rate: float = 0.02
    #: a compensable action commits, then the idempotency store refuses the success record
    step_idempotency_down_rate: float = 0.02
    step_duplicate_rate: float = 0.05
    duplicate_delivery_rate: float = 0.05
    dispatcher_crash_rate: float = 0.02
    late_resend_rate: float = 0.002
    db_kill_interval_seconds: float = 3.0
    #: SQS outages of the relays' client, spread over the production; they alternate between
    #: connection refused and expired credentials (ExpiredToken)
    sqs_outages: int = 2
    sqs_outage_seconds: float = 30.0
    #: relays SIGSTOPped past their lease, then SIGCONTinued
    stalls: int = 6
    #: every so often a chaos connection holds the outbox table, or leased rows, locked
    #: (0: never); some relays run with a short lock_timeout / statement_timeout
    table_lock_interval_seconds: float = 15.0
    table_lock_seconds: float = 1.5
    db_timeouts: bool = True
    #: a write transaction held open this long in another database of the server (0: none)
    foreign_transaction_seconds: float = 30.0
    #: the relays' max_attempts: the library's default, so that an outage charged to rows
    #: would kill them (and the checker's dead_rows would see it)
    relay_max_attempts: int = 8
    aggregates: int | None = None  #: default: events // 100 (at least 1)
    lease_seconds: float = 3.0
    event_sources: int = 2
    max_backlog: int = 300  #: plain events enqueued but not yet consumed
    #: sagas started but not finished, at most: moto runs every execution on its own thread in
    #: this process, and hundreds at once starve each other past their task timeouts
    max_sagas_in_flight: int = 40
    database_url: str | None = None
    #: or a broken relay (checker tests): mark_before_send, drop_failed, charge_request_failures
    relay_mode: str = "correct"
    #: or "skip_own_compensation": broken steps that never undo a step whose outcome was unknown
    steps_mode: str = "correct"
    crash_after_mark_rate: float = 0.0
    #: where the probe events' outbox is: "postgres" (relay processes) or "dynamodb" (the
    #: DynamoDB outbox, its stream and the stream consumer; see .ddb_source)
    source: str = "postgres"
    #: saga-starting events whose Standard StartExecution the dispatcher loses (every delivery
    #: of them): the reconciler pass at the end must repair each one
    lost_dispatches: int = 0
    timeout_seconds: float = 3_600.0
    settle_timeout_seconds: float = 300.0
    log_dir: str | None = None
    #: a second destination the probe events are also routed to: sns, eventbridge or kinesis
    destination: str | None = None

    def __post_init__(self) -> None:
        if self.destination not in (None, "sns", "eventbridge", "kinesis"):
            raise ValueError(f"--destination must be sns, eventbridge or kinesis, got {self.destination!r}")
        if self.events < 0 or self.sagas < 0 or self.events + self.sagas == 0:
            raise ValueError("--events and --sagas must be >= 0, and not both 0")
        if self.relays < 1:
            raise ValueError("--relays must be at least 1")
        for name in ("kills", "sqs_outages", "stalls", "lost_dispatches"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 0")
        for name in _RATES:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"--{name.replace('_', '-')} must be between 0 and 1, got {value}")
        step_sum = sum(
            getattr(self, f"step_{n}_rate")
            for n in ("failure", "lost_response", "timeout", "exhausted", "idempotency_down")
        )
        if step_sum > 1.0:
            raise ValueError("the step fault rates (but duplicate) must add up to at most 1")
        if self.relay_max_attempts < 1:
            raise ValueError("relay_max_attempts must be at least 1")
        if self.source not in ("postgres", "dynamodb"):
            raise ValueError(f"--source must be postgres or dynamodb, got {self.source!r}")
        if self.steps_mode not in ("correct", "skip_own_compensation"):
            raise ValueError(f"unknown steps_mode {self.steps_mode!r}")
