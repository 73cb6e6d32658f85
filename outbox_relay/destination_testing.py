"""Fault injection for the SNS, EventBridge and Kinesis clients, as
:class:`outbox_relay.testing.FaultySqsClient` is for SQS: moto never fails an entry, so the
tests and ``saga-outbox chaos`` wrap the real (or moto) client with this one.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

__all__ = ["FaultyDestinationClient"]

# the batch call of each service, where its entries are, and how it reports entry failures
_CALLS = {
    "publish_batch": "PublishBatchRequestEntries",
    "put_events": "Entries",
    "put_records": "Records",
}
_THROTTLE = {
    "publish_batch": "Throttled",
    "put_events": "ThrottlingException",
    "put_records": "ProvisionedThroughputExceededException",
}


@dataclass
class FaultyDestinationClient:
    """Wraps a boto3 SNS, EventBridge or Kinesis client.

    - ``fail_entry(entry) -> code | None``: fail that entry with the code (not forwarded);
    - ``entry_failure_rate``: per-entry server failure (``InternalError``/``InternalFailure``);
    - ``request_fault(call_number) -> exception | None``: fail the whole call before sending;
    - ``throttle_rate``: the whole call raises the service's throttling error.
    ``calls`` records the entries of every forwarded call, ``sent`` every accepted entry."""

    wrapped: Any
    fail_entry: Callable[[dict[str, Any]], str | None] | None = None
    entry_failure_rate: float = 0.0
    request_fault: Callable[[int], BaseException | None] | None = None
    throttle_rate: float = 0.0
    seed: int | None = None
    calls: list[list[dict[str, Any]]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    call_count: int = 0
    injected_failures: int = 0
    injected_request_faults: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        if name in _CALLS:
            return lambda **kw: self._call(name, kw)
        return getattr(self.wrapped, name)

    def _call(self, method: str, kw: dict[str, Any]) -> dict[str, Any]:
        entries: list[dict[str, Any]] = kw[_CALLS[method]]
        with self._lock:
            self.call_count += 1
            fault = self.request_fault(self.call_count) if self.request_fault else None
            throttle = fault is None and self._rng.random() < self.throttle_rate
            doomed = {i for i in range(len(entries)) if self._rng.random() < self.entry_failure_rate}
            if fault is not None or throttle:
                self.injected_request_faults += 1
        if fault is not None:
            raise fault
        if throttle:
            error: Any = {
                "Error": {"Code": _THROTTLE[method], "Message": "Rate exceeded (injected)"},
                "ResponseMetadata": {"HTTPStatusCode": 400},
            }
            raise ClientError(error, method)
        codes: dict[int, str] = {}
        for i, e in enumerate(entries):
            code = self.fail_entry(e) if self.fail_entry else None
            if code:
                codes[i] = code
            elif i in doomed:
                codes[i] = "InternalError" if method == "publish_batch" else "InternalFailure"
        forward = [e for i, e in enumerate(entries) if i not in codes]
        answer: dict[str, Any] = {}
        if forward:
            answer = getattr(self.wrapped, method)(**{**kw, _CALLS[method]: forward})
        with self._lock:
            self.calls.append(forward)
            self.injected_failures += len(codes)
        return self._merge(method, entries, codes, answer)

    def _merge(
        self, method: str, entries: list[dict[str, Any]], codes: dict[int, str], answer: dict[str, Any]
    ) -> dict[str, Any]:
        if method == "publish_batch":  # results by Id
            failed = [
                {
                    "Id": entries[i]["Id"],
                    "Code": c,
                    "Message": "injected",
                    "SenderFault": c != "InternalError",
                }
                for i, c in codes.items()
            ]
            ok = {s["Id"] for s in answer.get("Successful", [])}
            with self._lock:
                self.sent.extend(e for e in entries if e["Id"] in ok)
            return {"Successful": answer.get("Successful", []), "Failed": failed + answer.get("Failed", [])}
        # EventBridge and Kinesis: positional results
        key, count = (
            ("Entries", "FailedEntryCount") if method == "put_events" else ("Records", "FailedRecordCount")
        )
        forwarded = iter(answer.get(key, []))
        results: list[dict[str, Any]] = []
        for i, e in enumerate(entries):
            if i in codes:
                results.append({"ErrorCode": codes[i], "ErrorMessage": "injected"})
                continue
            result = next(forwarded)
            results.append(result)
            if "ErrorCode" not in result:
                with self._lock:
                    self.sent.append(e)
        return {count: sum(1 for r in results if "ErrorCode" in r), key: results}
