"""What a saga that ended in ``CompensationFailed`` needs repaired, read off the Fail state's
cause. The compiler gives that state ``CausePath: States.JsonToString($.failed)``: a JSON object
``{"<FailedState>": {"Error": ..., "Cause": ...}}`` naming the state whose failure nothing could
undo (a compensation, ``on_compensated``, a step after the pivot, or the pivot itself through
its ``Unresolved`` Pass). A Lambda step's own ``Cause`` is the runtime's JSON error report, of
which only ``errorMessage`` is meant for a reader."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from saga_outbox.workflows.compiler import COMPENSATION_FAILED

__all__ = ["SagaFailure", "parse_failures"]


@dataclass(frozen=True, slots=True)
class SagaFailure:
    state: str  # the state whose failure was recorded under $.failed
    error: str | None
    cause: str | None  # the message: a Lambda error's errorMessage, else the cause as written

    @property
    def summary(self) -> str:
        """``CompensateChargePayment failed with Rejected.RefundFailed: refund declined``."""
        text = f"{self.state} failed"
        if self.error:
            text += f" with {self.error}"
        return f"{text}: {self.cause}" if self.cause else text

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "error": self.error, "cause": self.cause, "summary": self.summary}


def _message(cause: Any) -> str | None:
    if cause is None:
        return None
    text = cause if isinstance(cause, str) else json.dumps(cause)
    try:
        report = json.loads(text)
    except ValueError:
        return text
    if isinstance(report, dict) and isinstance(report.get("errorMessage"), str):
        return report["errorMessage"]
    return text


def parse_failures(error: str | None, cause: str | None) -> tuple[SagaFailure, ...]:
    """The failures an execution's ``CompensationFailed`` cause names, in its order; empty when
    the execution failed otherwise or the cause is not the compiler's JSON (a saga compiled
    before the cause carried it, or a foreign state machine)."""
    if error != COMPENSATION_FAILED or not cause:
        return ()
    try:
        failed = json.loads(cause)
    except ValueError:
        return ()
    if not isinstance(failed, dict):
        return ()
    out = []
    for state, details in failed.items():
        if not isinstance(details, dict):
            continue
        name = details.get("Error")
        error_name = name if isinstance(name, str) else None
        out.append(SagaFailure(state, error_name, _message(details.get("Cause"))))
    return tuple(out)
