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


#: Errors worth a retry, and the default of :class:`RetryPolicy`: the one list (the handlers'
#: exceptions module re-exports it, and a test checks it names their transient classes).
#: Step Functions matches error *names*; a declared rejection (``Rejected.*``, see
#: :data:`REJECTION_PREFIX`) is final and goes straight to the Catch, so a declined card is
#: compensated at once instead of being charged three times. The unqualified names are the step
#: handler's transient exceptions; the ``Lambda.*`` ones are AWS's "handle Lambda service
#: exceptions" list (ClientExecutionTimeout, Service, AWSLambda, SdkClient) plus throttling;
#: ``Lambda.Unknown`` / ``Sandbox.Timedout`` (the function crashed or hit its timeout) and
#: ``States.Timeout`` are retried too: every action is idempotent, so a retry either finds the
#: effect an earlier attempt committed or makes it, which turns an unknown outcome into a known
#: one instead of cancelling an order over one glitch.
TRANSIENT_ERRORS = (
    "DatabaseUnavailable",
    "StepInProgress",
    "IdempotencyStoreUnavailable",
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Lambda.Unknown",
    "Sandbox.Timedout",
    "States.Timeout",
)

#: Error-name prefix of a *declared rejection*: the action proved that nothing happened (its
#: transaction rolled back and no earlier attempt took effect), so its own compensation is
#: skipped. The steps handler reports every ``BusinessRuleViolation`` as
#: ``Rejected.<ClassName>``; the compiled Choice matches the prefix (ASL ``ErrorEquals`` matches
#: exact names only, and the compiler cannot know the app's exception classes). Any other
#: failure that survives the retries has an unknown outcome and compensates the step itself.
REJECTION_PREFIX = "Rejected."


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
    """What the action may take (for ``lambda``: at most the steps function's timeout, derived
    from these by :func:`~saga_outbox.workflows.timeouts.function_timeout_seconds`; the Task's
    ASL ``TimeoutSeconds`` exceeds that function timeout with a margin). For
    ``lambda.waitForTaskToken``: how long to wait for the token."""
    idempotent: bool = False
    max_result_bytes: int = 8 * 1024
    """The most JSON the action (and its compensation) returns: reserved in the workflow's
    256 KiB state budget (:func:`~saga_outbox.workflows.budget.workflow_input_budget_bytes`)."""
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

    Standard, in the classic form checked at construction: compensable steps, then at most one
    *pivot* (the first step, or the ``on_success`` hook, without a compensation), then only
    steps retried on ``States.ALL`` (nothing after the pivot can be undone). When step *k*
    fails after its retries:

    * a declared rejection (``Rejected.*``): compensate *k-1 … 1*;
    * any other error (timeout, crash, retries exhausted: the outcome is unknown, it may have
      committed): compensate *k* itself, then *k-1 … 1*; the pivot cannot be undone, so its
      unknown outcome (and any failure after it) ends in ``CompensationFailed`` at once.

    Then ``on_compensated``; a compensation that still fails ends the execution FAILED with
    error ``CompensationFailed`` and a cause naming the failed state, its error and cause.
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
