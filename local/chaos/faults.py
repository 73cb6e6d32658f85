"""Faults injected in the harness process: Lambda steps and the dispatcher's event source."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from saga_outbox.lambdas.exceptions import DatabaseUnavailable

from ..event_source import SqsEventSource
from .history import History, Receipt

__all__ = ["ChaosEventSource", "FaultySteps", "StepFaultRates", "recording_dispatcher"]

#: A timed-out invocation whose function ran anyway. The bridge names a failure after the
#: exception class; moto refuses task errors named ``States.*`` (a real state timeout,
#: ``States.Timeout``, is in the same Retry list), so the timeout surfaces as the client-side
#: Lambda timeout name ``Lambda.SdkClientException``.
StatesTimeout = type("Lambda.SdkClientException", (Exception,), {})


def _roll(seed: int, *parts: str) -> float:
    """A deterministic number in [0, 1) per (seed, key): faults do not depend on thread timing."""
    digest = hashlib.sha256(":".join((str(seed), *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True, kw_only=True)
class StepFaultRates:
    failure: float = 0.05  #: transient error before the handler runs (nothing happened)
    lost_response: float = 0.03  #: the handler ran and committed, the response is lost
    timeout: float = 0.02  #: the handler ran, the state times out (States.Timeout)
    #: a compensable action: the handler runs and commits on every attempt and every
    #: response is lost or times out, so the retries run out with the effect in place
    exhausted: float = 0.0
    #: a compensable action: the SQL commits, then the idempotency store (DynamoDB) refuses
    #: the success record; the in-progress record it leaves answers the retries StepInProgress
    idempotency_down: float = 0.0
    duplicate: float = 0.05  #: the same task is invoked twice


class _StoreDown:
    """A botocore hook on the steps' DynamoDB client: while the current thread's flag is set,
    UpdateItem (Powertools' save_success) fails as if DynamoDB were unavailable."""

    def __init__(self, dynamodb_client: Any) -> None:
        self.flag = threading.local()
        dynamodb_client.meta.events.register("before-call.dynamodb.UpdateItem", self._hook)

    def _hook(self, **_kw: Any) -> None:
        if getattr(self.flag, "on", False):
            error: Any = {
                "Error": {"Code": "ServiceUnavailable", "Message": "injected: idempotency store down"},
                "ResponseMetadata": {"HTTPStatusCode": 503},
            }
            raise ClientError(error, "UpdateItem")


class FaultySteps:
    """Wraps the steps handler bridged into moto's Lambda. The transient faults hit only the
    FIRST invocation of a (execution, state), so the workflow's Retry (3 attempts) always has a
    clean one left: a saga must never fail because of them, only absorb them.

    The "effect committed, then the step fails" faults (``exhausted``, ``idempotency_down``)
    hit only actions that have a compensation (``compensable(workflow, step)``), and outlast
    the retries on purpose: the saga must end compensated with that step undone too (its
    outcome is unknown), which the scenario's ``effects_left_behind`` audit checks.
    ``skip_own_compensation`` makes these steps' compensations do nothing (a broken saga layer
    that the checker must catch)."""

    def __init__(
        self,
        handler: Callable[[Any, Any], Any],
        *,
        rates: StepFaultRates,
        seed: int,
        history: History,
        compensable: Callable[[str, str], bool] = lambda _w, _s: False,
        dynamodb_client: Any = None,
        skip_own_compensation: bool = False,
    ) -> None:
        self._handler = handler
        self._rates = rates
        self._seed = seed
        self._history = history
        self._compensable = compensable
        self._store_down = _StoreDown(dynamodb_client) if dynamodb_client is not None else None
        self._skip_own = skip_own_compensation
        self._attempts: dict[tuple[str, str], int] = {}
        self._doomed: dict[tuple[str, str], str] = {}  # (execution, step) -> the lasting fault
        self._lock = threading.Lock()

    def __call__(self, event: Any, context: Any) -> Any:
        execution = str(event.get("execution", "")) if isinstance(event, dict) else ""
        state = str(event.get("state", "")) if isinstance(event, dict) else ""
        key = (execution, state)
        with self._lock:
            attempt = self._attempts.get(key, 0) + 1
            self._attempts[key] = attempt
        if attempt > 1:
            self._history.count("step_reinvocations")
        step, kind = str(event.get("step", "")), str(event.get("kind", ""))
        lasting = self._doomed.get((execution, step))
        if lasting is not None and kind == "compensation" and self._skip_own:
            return {}  # broken on purpose: the effect of the failed step stays
        if lasting == "exhausted" and kind == "action":
            return self._commit_then_fail(event, context, execution, state, attempt)
        if attempt > 1 or not execution:
            return self._handler(event, context)
        r, rates = _roll(self._seed, execution, state), self._rates
        if r < rates.failure:
            self._history.count("step_failures")
            raise DatabaseUnavailable(f"{execution}/{state}: injected failure before the step ran")
        r -= rates.failure
        if r < rates.lost_response:
            self._handler(event, context)
            self._history.count("step_lost_responses")
            raise DatabaseUnavailable(f"{execution}/{state}: injected failure after the step committed")
        r -= rates.lost_response
        if r < rates.timeout:
            self._handler(event, context)
            self._history.count("step_timeouts")
            raise StatesTimeout(f"{execution}/{state}: injected timeout after the step ran")
        r -= rates.timeout
        lasting_ok = kind == "action" and self._compensable(str(event.get("workflow", "")), step)
        if r < rates.exhausted and lasting_ok:
            self._doomed[(execution, step)] = "exhausted"
            self._history.count("step_unknown_outcomes_exhausted")
            return self._commit_then_fail(event, context, execution, state, attempt)
        r -= rates.exhausted
        if r < rates.idempotency_down and lasting_ok and self._store_down is not None:
            self._doomed[(execution, step)] = "idempotency_down"
            self._history.count("step_idempotency_store_down")
            self._store_down.flag.on = True
            try:
                return self._handler(event, context)  # commits, then IdempotencyStoreUnavailable
            finally:
                self._store_down.flag.on = False
        r -= rates.idempotency_down
        if r < rates.duplicate:
            self._history.count("step_duplicate_invocations")
            self._history.count("step_reinvocations")
            self._handler(event, context)
            return self._handler(event, context)
        return self._handler(event, context)

    def _commit_then_fail(self, event: Any, context: Any, execution: str, state: str, attempt: int) -> Any:
        self._handler(event, context)  # commits (or finds its own earlier effect)
        if attempt % 2:
            raise StatesTimeout(f"{execution}/{state}: injected timeout after the step ran (every attempt)")
        raise DatabaseUnavailable(f"{execution}/{state}: injected lost response (every attempt)")


def recording_dispatcher(
    handler: Callable[[Any, Any], Any], history: History, *, plain_type: str
) -> Callable[[Any, Any], Any]:
    """The dispatcher handler, recording every record it processed successfully."""

    def dispatch(event: dict[str, Any], context: Any) -> Any:
        response = handler(event, context)
        failed = {f["itemIdentifier"] for f in (response or {}).get("batchItemFailures", [])}
        receipts = []
        for record in event.get("Records", []):
            if record["messageId"] in failed:
                continue
            try:
                body = json.loads(record["body"])
            except ValueError:
                continue
            receipts.append(
                Receipt(
                    group_id=record["attributes"].get("MessageGroupId", ""),
                    event_id=str(body.get("event_id", "")),
                    event_type=str(body.get("event_type", "")),
                    receive_count=int(record["attributes"].get("ApproximateReceiveCount", 1)),
                )
            )
        history.record_receipts(receipts, plain_type=plain_type)
        return response

    return dispatch


class ChaosEventSource(SqsEventSource):
    """:class:`SqsEventSource` whose poller "dies" mid-batch now and then: it invokes the
    handler for a prefix of the batch (possibly all of it, possibly none) and never deletes,
    so every record of the batch returns after the visibility timeout."""

    def __init__(self, *, crash_rate: float, history: History, **kw: Any) -> None:
        super().__init__(**kw)
        self._crash_rate = crash_rate
        self._history = history

    def poll_once(self) -> int:
        messages = self.receive()
        if not messages:
            return 0
        if self._crash_rate and self._rng.random() < self._crash_rate:
            prefix = self._rng.randint(0, len(messages))
            if prefix:
                self._invoke(messages[:prefix], receive_count=1)
            self._history.count("dispatcher_crashes")
            return len(messages)
        failed = self._invoke(messages, receive_count=1)
        done = [m for m in messages if m["MessageId"] not in failed]
        if done and self._duplicate_rate and self._rng.random() < self._duplicate_rate:
            with self._lock:
                self.stats.duplicate_deliveries += len(done)
            self._history.count("duplicate_deliveries", len(done))
            self._invoke(done, receive_count=2)
        if done:
            self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
            with self._lock:
                self.stats.deleted += len(done)
        return len(messages)
