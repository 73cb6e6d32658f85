"""Fault injection for SQS clients: used by our tests and by ``saga-outbox chaos``, and usable
by anyone testing their own relay set-up. Wraps a real (or moto) boto3 SQS client."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

__all__ = ["FaultySqsClient", "SentEntry", "client_error", "endpoint_unreachable"]


def endpoint_unreachable(url: str = "https://sqs.us-east-1.amazonaws.com/") -> Exception:
    """What botocore raises when the SQS endpoint refuses connections."""
    from botocore.exceptions import EndpointConnectionError

    return EndpointConnectionError(endpoint_url=url)


def client_error(code: str, status: int, message: str = "injected") -> ClientError:
    """A request-level AWS error, e.g. ``client_error("ExpiredToken", 403)``."""
    error: Any = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(error, "SendMessageBatch")


@dataclass(frozen=True, slots=True)
class SentEntry:
    """One entry SQS accepted, in acceptance order."""

    group_id: str
    deduplication_id: str
    body: str
    at: float


@dataclass
class FaultySqsClient:
    """A boto3 SQS client proxy that fails entries or whole calls on purpose and records what
    the wrapped client accepted.

    - ``entry_failure_rate``: per-entry ``InternalError`` (server fault, retryable);
    - ``throttle_rate``: the whole call raises ``ThrottlingException``;
    - ``fail_entry``: a predicate on the entry dict for deterministic failures (poison tests);
    - ``after_send``: a hook called after a successful call (crash-between-send-and-mark tests);
    - ``request_fault``: called with the 1-based call number before anything is sent; an
      exception it returns is raised for the whole call (an outage, expired credentials...).
      :func:`endpoint_unreachable` and :func:`client_error` build the usual ones.
    Failed entries are *not* forwarded, as with SQS, so they are never delivered.
    """

    wrapped: Any
    entry_failure_rate: float = 0.0
    throttle_rate: float = 0.0
    seed: int | None = None
    fail_entry: Callable[[dict[str, Any]], str | None] | None = None
    after_send: Callable[[list[dict[str, Any]]], None] | None = None
    request_fault: Callable[[int], BaseException | None] | None = None
    sent: list[SentEntry] = field(default_factory=list)
    calls: int = 0
    injected_failures: int = 0
    injected_throttles: int = 0
    injected_request_faults: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)

    def send_message_batch(
        self, *, QueueUrl: str, Entries: list[dict[str, Any]], **kw: Any
    ) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
            fault = self.request_fault(self.calls) if self.request_fault else None
            if fault is not None:
                self.injected_request_faults += 1
        if fault is not None:
            raise fault
        with self._lock:
            throttle = self._rng.random() < self.throttle_rate
            doomed = {e["Id"] for e in Entries if self._rng.random() < self.entry_failure_rate}
        if throttle:
            with self._lock:
                self.injected_throttles += 1
            error: Any = {
                "Error": {"Code": "ThrottlingException", "Message": "Rate exceeded (injected)"},
                "ResponseMetadata": {"HTTPStatusCode": 400},
            }
            raise ClientError(error, "SendMessageBatch")
        failed: list[dict[str, Any]] = []
        forward: list[dict[str, Any]] = []
        for e in Entries:
            reason = self.fail_entry(e) if self.fail_entry else None
            if reason:
                failed.append(
                    {"Id": e["Id"], "SenderFault": True, "Code": "InvalidParameterValue", "Message": reason}
                )
            elif e["Id"] in doomed:
                failed.append(
                    {
                        "Id": e["Id"],
                        "SenderFault": False,
                        "Code": "InternalError",
                        "Message": "injected entry failure",
                    }
                )
            else:
                forward.append(e)
        successful: list[dict[str, Any]] = []
        if forward:
            response = self.wrapped.send_message_batch(QueueUrl=QueueUrl, Entries=forward, **kw)
            successful = response.get("Successful", [])
            failed.extend(response.get("Failed", []))
            ok = {s["Id"] for s in successful}
            now = time.monotonic()
            with self._lock:
                self.sent.extend(
                    SentEntry(e["MessageGroupId"], e["MessageDeduplicationId"], e["MessageBody"], now)
                    for e in forward
                    if e["Id"] in ok
                )
            if self.after_send:
                self.after_send(forward)
        with self._lock:
            self.injected_failures += len(failed)
        return {"Successful": successful, "Failed": failed}
