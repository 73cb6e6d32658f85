"""The saga model: retry policies, steps and workflows as validated, frozen, keyword-only dataclasses.

Every rule is checked when the object is built (see :mod:`saga_outbox.workflows.validation`), so an invalid
workflow never reaches the compiler, CDK or the local runtime.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from saga_outbox.workflows import validation


class WorkflowKind(enum.StrEnum):
    """Step Functions workflow type."""

    STANDARD = "STANDARD"
    """Exactly-once per execution name, up to a year; steps may have compensations."""
    EXPRESS = "EXPRESS"
    """At-least-once, at most 5 minutes, high volume; every step must be idempotent."""


class Integration(enum.StrEnum):
    """How a Task state calls the steps Lambda."""

    LAMBDA = "lambda"
    """``arn:aws:states:::lambda:invoke``: request/response."""
    LAMBDA_WAIT_FOR_TASK_TOKEN = "lambda.waitForTaskToken"
    """``arn:aws:states:::lambda:invoke.waitForTaskToken``: the payload carries ``task_token``;
    the step completes when something calls SendTaskSuccess/SendTaskFailure. Standard only."""

    @property
    def pattern(self) -> str:
        """The service integration pattern suffix (``""``, ``"sync"``, ``"waitForTaskToken"``)."""
        _, _, suffix = self.value.partition(".")
        return suffix


#: Errors worth a retry, and the default of :class:`RetryPolicy`. Step Functions matches error
#: *names*; a business failure (a ``BusinessRuleViolation`` subclass of the app) is final and goes
#: straight to the Catch, so a declined card is compensated at once instead of being charged three
#: times. The unqualified names are the step handler's transient exceptions
#: (``saga_outbox.lambdas.exceptions``, which checks it against this list).
TRANSIENT_ERRORS = (
    "DatabaseUnavailable",
    "StepInProgress",
    "IdempotencyStoreUnavailable",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "States.Timeout",
)


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How often and how fast a Task is retried (one ASL ``Retry`` entry).

    ``max_attempts`` counts every attempt including the first (1 = never retry); it compiles to
    ASL ``MaxAttempts = max_attempts - 1``. The wait before retry *n* is
    ``interval_seconds * backoff_rate ** (n - 1)``.
    """

    errors: tuple[str, ...] = TRANSIENT_ERRORS
    interval_seconds: int = 1
    backoff_rate: float = 2.0
    max_attempts: int = 3

    def __post_init__(self) -> None:
        if isinstance(self.errors, str) or not isinstance(self.errors, Sequence):
            raise validation.error("errors", self.errors, "must be a sequence of error names, not a string")
        object.__setattr__(self, "errors", tuple(self.errors))
        validation.check_retry_policy(self)

    @property
    def retry_wait_seconds(self) -> float:
        """Total time spent waiting between attempts when every attempt fails."""
        return sum(self.interval_seconds * self.backoff_rate**n for n in range(self.max_attempts - 1))


DEFAULT_RETRY = RetryPolicy()


@dataclass(frozen=True, kw_only=True)
class Step:
    """One Task of a workflow: the ``action`` run by the steps Lambda, and the optional
    ``compensation`` action that undoes it (Standard workflows only). Also used for the
    ``on_success`` / ``on_compensated`` hooks (which take no compensation)."""

    name: str
    action: str
    compensation: str | None = None
    retry: RetryPolicy = DEFAULT_RETRY
    timeout_seconds: int = 30
    idempotent: bool = False
    integration: Integration | str = Integration.LAMBDA
    """An :class:`Integration` or its value; always an :class:`Integration` after construction."""

    def __post_init__(self) -> None:
        if not isinstance(self.integration, Integration):
            try:
                object.__setattr__(self, "integration", Integration(self.integration))
            except ValueError:
                raise validation.error(
                    "integration",
                    self.integration,
                    f"must be one of {', '.join(repr(i.value) for i in Integration)}",
                ) from None
        validation.check_step(self)

    def worst_case_seconds(self) -> float:
        """Longest time this step can take: every attempt times out, plus the waits between them."""
        return self.timeout_seconds * self.retry.max_attempts + self.retry.retry_wait_seconds


@dataclass(frozen=True, kw_only=True)
class Workflow:
    """A saga (Standard) or a short idempotent pipeline (Express).

    Standard: steps run in order; when step *k* fails after its retries, the compensations of
    steps *k-1 … 1* run in reverse order, then ``on_compensated``; a compensation that still
    fails ends the execution as FAILED with error ``CompensationFailed``. When all steps
    succeed, ``on_success`` runs (its failure compensates every step).
    Express: the same without compensations; a failing step fails the execution.
    ``function`` is the logical Lambda every Task invokes (a key of ``function_arns`` at compile time).
    """

    name: str
    kind: WorkflowKind | str = WorkflowKind.STANDARD
    """A :class:`WorkflowKind` or its value; always a :class:`WorkflowKind` after construction."""
    steps: Sequence[Step] = ()
    on_success: Step | None = None
    on_compensated: Step | None = None
    function: str = "steps"

    def __post_init__(self) -> None:
        if not isinstance(self.kind, WorkflowKind):
            try:
                object.__setattr__(self, "kind", WorkflowKind(self.kind))
            except ValueError:
                raise validation.error("kind", self.kind, "must be STANDARD or EXPRESS") from None
        if isinstance(self.steps, Step | str) or not isinstance(self.steps, Sequence):
            raise validation.error("steps", self.steps, "must be a sequence of Step")
        object.__setattr__(self, "steps", tuple(self.steps))
        validation.check_workflow(self)

    def hooks(self) -> tuple[Step, ...]:
        return tuple(h for h in (self.on_success, self.on_compensated) if h is not None)

    def worst_case_seconds(self) -> float:
        """Longest run when every step and hook exhausts its retries by timing out."""
        return sum(s.worst_case_seconds() for s in (*self.steps, *self.hooks()))
