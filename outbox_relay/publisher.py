"""Publishers: where claimed rows go. SQS FIFO first; the interface admits others."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ._lease_guard import LeaseEnding, check_attempt
from .envelope import SQS_MAX_MESSAGE_BYTES
from .exceptions import (
    ConfigurationError,
    CredentialsMissingError,
    PublishError,
    QueueNotFifoError,
    QueueNotFoundError,
)

__all__ = [
    "BatchOutcome",
    "EntryFailure",
    "NullPublisher",
    "OutboundMessage",
    "Publisher",
    "SqsFifoPublisher",
]

# SQS error codes that mean "slow down", not "this entry is bad".
THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "RequestThrottled",
        "TooManyRequestsException",
        "AWS.SimpleQueueService.RequestThrottled",
        "RequestLimitExceeded",
        "KmsThrottled",
        "KMS.ThrottlingException",
    }
)
# Request-level codes by cause: none of them is about one entry's content.
CREDENTIAL_CODES = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "InvalidSecurity",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "RequestExpired",
        "AuthFailure",
    }
)
PERMISSION_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "KMS.AccessDeniedException",
        "KmsAccessDenied",
        "KMS.DisabledException",
        "KMS.InvalidStateException",
        "KMS.NotFoundException",
        "KmsDisabled",
        "KmsInvalidState",
        "KmsNotFound",
    }
)
DESTINATION_CODES = frozenset(
    {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "InvalidAddress"}
)
SERVER_CODES = frozenset({"InternalError", "InternalFailure", "ServiceUnavailable"})


def request_cause(code: str, status: int) -> str:
    """Why a whole request failed (see :data:`outbox_relay.exceptions.REQUEST_CAUSES`)."""
    if code in THROTTLING_CODES or status == 429:
        return "throttled"
    if code in CREDENTIAL_CODES:
        return "credentials"
    if code in PERMISSION_CODES or status == 403:
        return "permission"
    if code in DESTINATION_CODES:
        return "destination"
    if code in SERVER_CODES or status >= 500:
        return "server"
    return "rejected"


@dataclass(frozen=True, kw_only=True, slots=True)
class OutboundMessage:
    """One outbox row, ready to send."""

    row_id: int
    event_id: str
    group_id: str
    deduplication_id: str
    body: str
    attributes: Mapping[str, Mapping[str, str]]
    size: int
    #: the event's trace context in X-Ray format (sent as ``AWSTraceHeader``), if it has one
    trace_header: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class EntryFailure:
    row_id: int
    code: str
    reason: str
    permanent: bool = False  # the sender's fault: retrying the same bytes cannot succeed
    throttled: bool = False
    #: the entry was not judged on its content (the whole request failed, or it was held back
    #: behind a failed entry of its group): no attempt is spent
    request_level: bool = False
    #: SQS may have accepted it despite the failure (read timeout, 5xx, unknown error)
    maybe_delivered: bool = False


@dataclass(kw_only=True, slots=True)
class BatchOutcome:
    succeeded: list[int] = field(default_factory=list)
    failed: list[EntryFailure] = field(default_factory=list)


class Publisher(Protocol):
    """Sends batches; reports per-entry outcomes or raises :class:`PublishError` for the whole
    request. ``max_batch_entries``/``max_batch_bytes`` bound what the relay puts in one call.

    A publisher may also declare ``attempt_seconds``, the longest one attempt of a request can
    take (connect + read timeouts), and call :func:`outbox_relay._lease_guard.check_attempt`
    before each attempt goes out: the relay then never starts an attempt that could end after
    its lease (see ``SqsFifoPublisher``). After :meth:`check`, ``calls_per_second_quota`` (if
    present and not None) is the service's quota on publish calls: a relay with no
    ``max_calls_per_second`` of its own paces itself just under it."""

    max_batch_entries: int
    max_batch_bytes: int

    def check(self) -> None:
        """Fail fast at start-up if the destination is unusable."""

    def publish_batch(self, messages: Sequence[OutboundMessage]) -> BatchOutcome: ...


class NullPublisher:
    """Accepts everything and sends nothing: the benchmark's no-op sink, and a dry run."""

    max_batch_entries = 10
    max_batch_bytes = SQS_MAX_MESSAGE_BYTES

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def check(self) -> None:
        return None

    def publish_batch(self, messages: Sequence[OutboundMessage]) -> BatchOutcome:
        with self._lock:
            self.count += len(messages)
        return BatchOutcome(succeeded=[m.row_id for m in messages])


class SqsFifoPublisher:
    """Publishes to an SQS FIFO queue with ``SendMessageBatch`` (≤10 entries, ≤1 MiB).

    The boto3 client is injected (tests, moto, custom retry config) or created lazily on first
    use, so constructing a publisher never touches the network or the environment.
    """

    max_batch_entries = 10
    max_batch_bytes = SQS_MAX_MESSAGE_BYTES
    #: the client we create: one attempt takes at most connect + read timeout, and there are
    #: at most two, so a request ends well inside the default 30 s lease
    CONNECT_TIMEOUT = 2.0
    READ_TIMEOUT = 5.0
    TOTAL_ATTEMPTS = 2
    #: SendMessageBatch calls per second a FIFO queue takes when its throughput quota applies
    #: to the whole queue (FifoThroughputLimit perQueue, the default): 3,000 messages batched
    NORMAL_MODE_CALLS_PER_SECOND = 300.0

    def __init__(
        self,
        *,
        queue_url: str,
        sqs_client: Any = None,
        region_name: str | None = None,
        endpoint_url: str | None = None,
    ) -> None:
        if not queue_url or not queue_url.startswith(("https://", "http://")):
            raise ConfigurationError(
                f"queue URL {queue_url!r} is not a URL: pass the QueueUrl "
                "(https://sqs.<region>.amazonaws.com/<account>/<name>.fifo), not the name or ARN"
            )
        self.queue_url = queue_url
        self._client = sqs_client
        self._region_name = region_name
        self._endpoint_url = endpoint_url
        self._lock = threading.Lock()
        self._guarded: Any = None
        #: read by check(): NORMAL_MODE_CALLS_PER_SECOND on a queue in normal throughput mode,
        #: None in high-throughput mode (quota per message group) or before check()
        self.calls_per_second_quota: float | None = None

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import boto3

                    self._client = boto3.client(
                        "sqs",
                        region_name=self._region_name,
                        endpoint_url=self._endpoint_url,
                        config=self.client_config(),
                    )
        client = self._client
        if self._guarded is not client:
            with self._lock:
                if self._guarded is not client:
                    # First in line, so an in-process stub (moto) never sees a refused attempt;
                    # botocore does not retry an exception raised here. A test double without
                    # botocore's event system gets the relay's check before the call only.
                    events = getattr(getattr(client, "meta", None), "events", None)
                    if events is not None:
                        events.register_first(
                            "before-send.sqs.SendMessageBatch", _guard_attempt, unique_id="saga-outbox-lease"
                        )
                    self._guarded = client
        return client

    @classmethod
    def client_config(cls) -> Any:
        """The botocore ``Config`` of the client this publisher creates; pass it to a client you
        build yourself (a session of your own, a Lambda runtime) to keep its guarantees."""
        from botocore.config import Config

        # The relay owns retries (per entry, with backoff and attempt counting), so botocore
        # keeps to one quick retry for connection blips, and an attempt fits well in a lease.
        return Config(
            retries={"mode": "standard", "total_max_attempts": cls.TOTAL_ATTEMPTS},
            connect_timeout=cls.CONNECT_TIMEOUT,
            read_timeout=cls.READ_TIMEOUT,
            max_pool_connections=64,
            parameter_validation=False,  # entries are built by the relay
        )

    @property
    def attempt_seconds(self) -> float:
        """The longest one SendMessageBatch attempt can take with this client's timeouts."""
        config = getattr(getattr(self.client, "meta", None), "config", None)
        if config is None:  # a test double: no timeouts to honour
            return 0.0
        return float(config.connect_timeout or 60) + float(config.read_timeout or 60)

    def check(self) -> None:
        from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

        try:
            attrs = self.client.get_queue_attributes(
                QueueUrl=self.queue_url,
                AttributeNames=["FifoQueue", "ContentBasedDeduplication", "FifoThroughputLimit"],
            ).get("Attributes", {})
        except NoCredentialsError as exc:
            raise CredentialsMissingError(
                "no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                "or run with an IAM role"
            ) from exc
        except EndpointConnectionError as exc:
            raise QueueNotFoundError(f"cannot reach the SQS endpoint for {self.queue_url}: {exc}") from exc
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if "NonExistentQueue" in code or code in ("QueueDoesNotExist", "InvalidAddress"):
                raise QueueNotFoundError(
                    f"queue {self.queue_url} does not exist (or this account cannot see it): "
                    "check the URL, the region and the account"
                ) from exc
            raise PublishError(f"cannot read queue attributes of {self.queue_url}: {exc}") from exc
        if attrs.get("FifoQueue") != "true":
            raise QueueNotFifoError(
                f"queue {self.queue_url} is not a FIFO queue: the relay needs FIFO for per-aggregate "
                "order and deduplication; create a queue whose name ends in .fifo with FifoQueue=true"
            )
        # FifoThroughputLimit says whether the 300 calls/s quota applies to the whole queue
        # (perQueue, also what an older queue without the attribute has) or to each group
        high_throughput = attrs.get("FifoThroughputLimit") == "perMessageGroupId"
        self.calls_per_second_quota = None if high_throughput else self.NORMAL_MODE_CALLS_PER_SECOND

    def publish_batch(self, messages: Sequence[OutboundMessage]) -> BatchOutcome:
        from botocore.exceptions import BotoCoreError, ClientError

        entries: list[dict[str, Any]] = [
            {
                "Id": str(i),
                "MessageBody": m.body,
                "MessageGroupId": m.group_id,
                "MessageDeduplicationId": m.deduplication_id,
                "MessageAttributes": dict(m.attributes),
            }
            for i, m in enumerate(messages)
        ]
        for entry, m in zip(entries, messages, strict=True):
            if m.trace_header is not None:
                # not counted in the message's size (SQS excludes system attributes)
                entry["MessageSystemAttributes"] = {
                    "AWSTraceHeader": {"DataType": "String", "StringValue": m.trace_header}
                }
        try:
            response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
        except LeaseEnding as exc:
            raise PublishError(
                f"SendMessageBatch to {self.queue_url} not sent: {exc}",
                cause="lease",
                maybe_delivered=exc.attempts_made > 0,
            ) from exc
        except (ClientError, BotoCoreError) as exc:
            from ._aws_errors import raise_request_error  # it imports this module's code sets

            raise_request_error(exc, action="SendMessageBatch", target=self.queue_url)
        outcome = BatchOutcome(
            succeeded=[messages[int(e["Id"])].row_id for e in response.get("Successful", [])]
        )
        for failure in response.get("Failed", []):
            code = failure.get("Code", "Unknown")
            throttled = code in THROTTLING_CODES
            outcome.failed.append(
                EntryFailure(
                    row_id=messages[int(failure["Id"])].row_id,
                    code=code,
                    reason=failure.get("Message", code),
                    permanent=bool(failure.get("SenderFault")) and not throttled,
                    throttled=throttled,
                )
            )
        return outcome


def _guard_attempt(**_: Any) -> None:
    check_attempt()
