"""``saga-outbox chaos``: run the outbox, the dispatcher and the sagas under injected faults
(relay processes SIGKILLed and SIGSTOPped past their lease, dropped PostgreSQL connections,
lock and statement timeouts, a long transaction in another database, SQS outages and expired
credentials, failing/throttled SQS entries, dispatcher crashes, duplicate deliveries, late
re-sends after the SQS dedup window, failing, timing-out and repeated Lambda steps, steps that
commit and then fail on every retry or lose their idempotency store) and check the invariants
of DESIGN.md §3 from the recorded history, for any app. The app supplies what needs its
domain (how to start one saga, an audit of its own tables) as a :class:`ChaosScenario`. See docs/chaos.md."""

from __future__ import annotations

from .checker import ChaosReport, check_run
from .harness import ChaosOptions, run_chaos
from .history import History
from .scenario import DOMAIN_CHECKS, ChaosScenario, DomainAudit, ScenarioFactory

__all__ = [
    "DOMAIN_CHECKS",
    "ChaosOptions",
    "ChaosReport",
    "ChaosScenario",
    "DomainAudit",
    "History",
    "ScenarioFactory",
    "check_run",
    "run_chaos",
]
