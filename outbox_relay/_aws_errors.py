"""Failure classification shared by the SNS, EventBridge and Kinesis publishers.

It extends :func:`outbox_relay.publisher.request_cause` (SQS's codes) with the other services'
codes, so issue 11's rule holds for every destination: only an entry rejected for its own
content spends an attempt; a throttled, unauthorized, missing or failing service backs the
relay off and spends nothing. A missing topic, bus or stream must never read as "this entry is
malformed": that would kill every row sent to it.
"""

from __future__ import annotations

from typing import Any, NoReturn

from ._lease_guard import LeaseEnding, check_attempt
from .exceptions import CredentialsMissingError, OutboxError, PublishError
from .publisher import CREDENTIAL_CODES, PERMISSION_CODES, THROTTLING_CODES, EntryFailure, request_cause

__all__ = ["DestinationNotFoundError", "LazyClient", "check_call", "entry_failure", "raise_request_error"]

THROTTLING = THROTTLING_CODES | {
    "Throttled",  # SNS
    "ThrottledException",
    "ProvisionedThroughputExceededException",  # Kinesis, per shard
    "LimitExceededException",
    "KMSThrottlingException",
    "KMSThrottling",
}
PERMISSION = PERMISSION_CODES | {
    "AuthorizationError",  # SNS
    "KMSAccessDeniedException",
    "KMSDisabledException",
    "KMSInvalidStateException",
    "KMSNotFoundException",
    "KMSOptInRequired",
    "KMSAccessDenied",
    "KMSDisabled",
    "KMSInvalidState",
    "KMSNotFound",
    "NotAuthorizedForSourceException",  # EventBridge
}
MISSING = frozenset({"NotFound", "NotFoundException", "ResourceNotFoundException"})


class DestinationNotFoundError(OutboxError):
    """The topic, event bus or stream does not exist, or this account cannot see it."""


def cause_of(code: str, status: int) -> str:
    if code in THROTTLING:
        return "throttled"
    if code in PERMISSION:
        return "permission"
    if code in MISSING:
        return "destination"
    return request_cause(code, status)


def raise_request_error(exc: Exception, *, action: str, target: str) -> NoReturn:
    """The :class:`PublishError` of a whole failed request (``exc`` from botocore, or the lease
    guard's refusal of an attempt)."""
    if isinstance(exc, LeaseEnding):
        raise PublishError(
            f"{action} to {target} not sent: {exc}", cause="lease", maybe_delivered=exc.attempts_made > 0
        ) from exc
    from botocore.exceptions import (
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        cause = cause_of(code, status)
        raise PublishError(
            f"{action} to {target} failed: {code}: {exc}",
            retryable=cause != "rejected",
            throttled=cause == "throttled",
            cause=cause,
        ) from exc
    credentials = isinstance(exc, NoCredentialsError | PartialCredentialsError) or (
        "Credential" in type(exc).__name__
    )
    # no connection, no request: the service cannot have seen it; a read timeout or a closed
    # connection may come after it accepted the batch
    unsent = credentials or isinstance(exc, EndpointConnectionError | ConnectTimeoutError)
    raise PublishError(
        f"{action} to {target} failed: {type(exc).__name__}: {exc}",
        cause="credentials" if credentials else "connection",
        maybe_delivered=not unsent,
    ) from exc


def entry_failure(
    row_id: int, code: str, reason: str, *, sender_fault: bool = False, invalid: frozenset[str] = frozenset()
) -> EntryFailure:
    """One entry the service refused inside an accepted request. ``invalid``: the service's
    codes for "this entry's content is wrong" (dead at once, like an SQS SenderFault)."""
    throttled = code in THROTTLING
    not_its_fault = code in PERMISSION or code in CREDENTIAL_CODES or code in MISSING
    return EntryFailure(
        row_id=row_id,
        code=code,
        reason=reason or code,
        permanent=(sender_fault or code in invalid) and not throttled and not not_its_fault,
        throttled=throttled,
        request_level=not_its_fault,
    )


def check_call(call: Any, *, what: str, **kwargs: Any) -> Any:
    """Run a publisher's start-up probe, turning botocore errors into specific ones."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        return call(**kwargs)
    except NoCredentialsError as exc:
        raise CredentialsMissingError(
            "no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
            "or run with an IAM role"
        ) from exc
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in MISSING or cause_of(code, 0) == "destination":
            raise DestinationNotFoundError(
                f"{what} does not exist (or this account cannot see it): check the name or ARN, "
                "the region and the account"
            ) from exc
        raise PublishError(f"cannot describe {what}: {exc}", cause=cause_of(code, 0)) from exc
    except BotoCoreError as exc:
        raise DestinationNotFoundError(f"cannot reach the endpoint of {what}: {exc}") from exc


def make_client(service: str, *, region_name: str | None, endpoint_url: str | None) -> Any:
    """A boto3 client configured as SqsFifoPublisher's (the relay owns retries; an attempt fits
    well inside a lease): one configuration for every destination's client."""
    import boto3

    from .publisher import SqsFifoPublisher

    return boto3.client(  # type: ignore[call-overload]
        service,
        region_name=region_name,
        endpoint_url=endpoint_url,
        config=SqsFifoPublisher.client_config(),
    )


class LazyClient:
    """An injected boto3 client, or one made on first use: constructing a publisher never
    touches the network or the environment."""

    def __init__(self, service: str, client: Any, region_name: str | None, endpoint_url: str | None) -> None:
        import threading

        self._service = service
        self._client = client
        self._region_name = region_name
        self._endpoint_url = endpoint_url
        self._lock = threading.Lock()

    def get(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = make_client(
                        self._service, region_name=self._region_name, endpoint_url=self._endpoint_url
                    )
                    self._guard(self._client)
        elif not self._guarded:
            with self._lock:
                self._guard(self._client)
        return self._client

    _guarded = False

    def _guard(self, client: Any) -> None:
        """The lease guard before every attempt of this service's calls (see
        ``SqsFifoPublisher``): first in line, so an in-process stub never sees a refused one."""
        if self._guarded:
            return
        meta = getattr(client, "meta", None)
        if meta is not None and getattr(meta, "events", None) is not None:
            service_id = meta.service_model.service_id.hyphenize()
            meta.events.register_first(
                f"before-send.{service_id}", _guard_attempt, unique_id="saga-outbox-lease"
            )
        self._guarded = True

    def attempt_seconds(self) -> float:
        """The longest one attempt can take with this client's timeouts (0: a test double)."""
        config = getattr(getattr(self.get(), "meta", None), "config", None)
        if config is None:
            return 0.0
        return float(config.connect_timeout or 60) + float(config.read_timeout or 60)


def _guard_attempt(**_: Any) -> None:
    check_attempt()


class LazyClientPublisher:
    """What every non-SQS publisher shares: its client (``self._client``, a :class:`LazyClient`)
    and the bound of one attempt the relay's lease check needs."""

    _client: LazyClient

    @property
    def client(self) -> Any:
        return self._client.get()

    @property
    def attempt_seconds(self) -> float:
        """The longest one request attempt can take: the relay starts none that could end
        after its lease."""
        return self._client.attempt_seconds()
