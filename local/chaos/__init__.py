"""``saga-outbox chaos``: run the outbox, the dispatcher and the sagas under injected faults
(relay processes SIGKILLed, dropped PostgreSQL connections, failing/throttled SQS entries,
dispatcher crashes, duplicate deliveries, late re-sends after the SQS dedup window, failing,
timing-out and repeated Lambda steps) and check the invariants of DESIGN.md §3 from the
recorded history. See docs/chaos.md."""

from __future__ import annotations

from .checker import ChaosReport, check_run
from .harness import ChaosOptions, run_chaos
from .history import History

__all__ = ["ChaosOptions", "ChaosReport", "History", "check_run", "run_chaos"]
