"""The step-task contract (docs/contracts.md) and the registry that maps it to domain code.

Step Functions invokes one "steps" Lambda per workflow domain with::

    {"workflow": "RoomSaga", "step": "ChargeCard", "action": "charge_card",
     "kind": "action" | "compensation" | "hook", "execution": <execution name>,
     "state": <state name>, "event": <outbox envelope>, "results": {<step>: {"output": ...}}}

:func:`run_step` parses that, looks up ``(workflow, action)`` in an :class:`ActionRegistry`
and runs the function inside ONE database transaction (``engine.begin()``), so a step's
business rows and any outbox events it enqueues commit together.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from .exceptions import DatabaseUnavailable, MalformedEvent, UnknownAction

__all__ = ["Action", "ActionRegistry", "StepContext", "StepTask", "run_step"]

KINDS = ("action", "compensation", "hook")


@dataclass(frozen=True, kw_only=True)
class StepTask:
    workflow: str
    step: str
    action: str
    kind: str
    execution: str
    state: str
    event: Mapping[str, Any]
    results: Mapping[str, Any] = field(default_factory=dict)
    task_token: str | None = None

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> StepTask:
        if not isinstance(payload, Mapping):
            raise MalformedEvent(f"step payload must be a JSON object, got {type(payload).__name__}")
        values: dict[str, Any] = {}
        for name in ("workflow", "step", "action", "kind", "execution", "state"):
            value = payload.get(name)
            if not isinstance(value, str) or not value:
                raise MalformedEvent(f"step payload field {name!r} must be a non-empty string, got {value!r}")
            values[name] = value
        if values["kind"] not in KINDS:
            raise MalformedEvent(f"step payload field 'kind' must be one of {KINDS}, got {values['kind']!r}")
        event = payload.get("event")
        if not isinstance(event, Mapping) or not isinstance(event.get("payload"), Mapping):
            raise MalformedEvent(
                "step payload field 'event' must be an outbox envelope with a 'payload' object"
            )
        results = payload.get("results") or {}
        if not isinstance(results, Mapping):
            raise MalformedEvent("step payload field 'results' must be an object")
        token = payload.get("task_token")
        if token is not None and (not isinstance(token, str) or not token):
            raise MalformedEvent(f"step payload field 'task_token' must be a non-empty string, got {token!r}")
        return cls(event=event, results=results, task_token=token, **values)

    @property
    def effect_key(self) -> str:
        """Idempotency key of this step's business effect: execution name + state name.

        Step Functions retries re-use both, and a Standard execution name is a pure function
        of the event id (saga_outbox.workflows.execution_name), so a repeated event maps to the same key."""
        return f"{self.execution}:{self.state}"

    @property
    def event_id(self) -> uuid.UUID:
        try:
            return uuid.UUID(str(self.event["event_id"]))
        except (KeyError, ValueError) as exc:
            raise MalformedEvent(f"event has no valid event_id: {self.event.get('event_id')!r}") from exc

    @property
    def event_type(self) -> str:
        return str(self.event.get("event_type", ""))

    @property
    def payload(self) -> Mapping[str, Any]:
        return self.event["payload"]  # type: ignore[no-any-return]

    def result_of(self, step: str) -> Mapping[str, Any] | None:
        """The output of an earlier step (``$.results.<step>.output``), if it ran."""
        value = self.results.get(step)
        if isinstance(value, Mapping):
            output = value.get("output", value)
            return output if isinstance(output, Mapping) else None
        return None


@dataclass(frozen=True, kw_only=True)
class StepContext:
    """What an action receives: the step's open transaction and what the execution knows.

    ``conn`` is a SQLAlchemy connection inside ONE transaction (the step's business rows and
    any event it emits with :meth:`enqueue` commit together); never commit or close it."""

    conn: sa.Connection
    task: StepTask
    outbox_schema: str = "saga_outbox"
    #: the app's size limit per event type (``SagaApp.max_event_bytes``), when the app is known
    max_event_bytes: Callable[[str], int] | None = None
    #: the app's destinations per event type (``SagaApp.destinations_for``): a step's events
    #: are routed like the app's own commands' (None: the SQS queue only)
    destinations_for: Callable[[str], Sequence[Any]] | None = None

    @property
    def payload(self) -> Mapping[str, Any]:
        """The payload of the outbox event that started the execution."""
        return self.task.payload

    @property
    def event(self) -> Mapping[str, Any]:
        """The whole outbox envelope (``event_id``, ``event_type``, ``aggregate_*``, ``payload``, ...)."""
        return self.task.event

    @property
    def event_id(self) -> uuid.UUID:
        return self.task.event_id

    @property
    def event_type(self) -> str:
        return self.task.event_type

    @property
    def workflow(self) -> str:
        return self.task.workflow

    @property
    def step(self) -> str:
        return self.task.step

    @property
    def kind(self) -> str:
        """``"action"``, ``"compensation"`` or ``"hook"``."""
        return self.task.kind

    @property
    def execution(self) -> str:
        """The execution name (a pure function of the event id for Standard workflows)."""
        return self.task.execution

    @property
    def state(self) -> str:
        return self.task.state

    @property
    def effect_key(self) -> str:
        """Idempotency key of this step's business effect (execution + state): put it in a
        UNIQUE column and ``INSERT ... ON CONFLICT DO NOTHING`` so a repeat makes no second effect."""
        return self.task.effect_key

    @property
    def task_token(self) -> str | None:
        """The callback token of a ``lambda.waitForTaskToken`` step (else None): hand it to
        whoever completes the step (``SendTaskSuccess`` / ``SendTaskFailure``)."""
        return self.task.task_token

    def result_of(self, step: str) -> Mapping[str, Any] | None:
        """The output of an earlier step, if it ran."""
        return self.task.result_of(step)

    def enqueue(
        self,
        event_type: str,
        payload: Mapping[str, Any],
        *,
        aggregate_type: str,
        aggregate_key: str,
        event_id: uuid.UUID | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> uuid.UUID:
        """Emit an event through the outbox in this step's transaction.

        Pass a deterministic ``event_id`` (e.g. ``uuid5`` of :attr:`execution`) so that a
        repeated step emits nothing new; ``causation_id`` and ``execution`` headers are added."""
        import outbox_relay
        from outbox_relay.envelope import SQS_MAX_MESSAGE_BYTES

        limit = SQS_MAX_MESSAGE_BYTES if self.max_event_bytes is None else self.max_event_bytes(event_type)
        return outbox_relay.enqueue(
            self.conn,
            max_message_bytes=limit,
            aggregate_type=aggregate_type,
            aggregate_key=aggregate_key,
            event_type=event_type,
            payload=payload,
            headers={"causation_id": str(self.event_id), "execution": self.execution, **(headers or {})},
            event_id=event_id,
            schema=self.outbox_schema,
            destinations=None if self.destinations_for is None else self.destinations_for(event_type),
        )


Action = Callable[[StepContext], Any]


class ActionRegistry:
    """``(workflow, action) -> function``. Functions return a JSON-serializable dict."""

    def __init__(self, actions: Mapping[tuple[str, str], Action] | None = None) -> None:
        self._actions: dict[tuple[str, str], Action] = dict(actions or {})

    def register(self, workflow: str, action: str, fn: Action) -> None:
        self._actions[(workflow, action)] = fn

    def lookup(self, workflow: str, action: str) -> Action:
        try:
            return self._actions[(workflow, action)]
        except KeyError:
            raise UnknownAction(
                f"no action {action!r} registered for workflow {workflow!r}; "
                f"known: {sorted(f'{w}.{a}' for w, a in self._actions)}"
            ) from None

    def __contains__(self, key: object) -> bool:
        return key in self._actions

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._actions)

    def __len__(self) -> int:
        return len(self._actions)


def run_step(
    payload: Mapping[str, Any] | StepTask,
    *,
    engine: sa.Engine,
    registry: ActionRegistry,
    outbox_schema: str = "saga_outbox",
    max_event_bytes: Callable[[str], int] | None = None,
    destinations_for: Callable[[str], Sequence[Any]] | None = None,
) -> Any:
    """Run one step in its own transaction; translate database failures to
    :class:`~saga_outbox.lambdas.exceptions.DatabaseUnavailable` (retryable); domain errors pass through."""
    task = payload if isinstance(payload, StepTask) else StepTask.from_payload(payload)
    fn = registry.lookup(task.workflow, task.action)
    try:
        with engine.begin() as conn:
            ctx = StepContext(
                conn=conn,
                task=task,
                outbox_schema=outbox_schema,
                max_event_bytes=max_event_bytes,
                destinations_for=destinations_for,
            )
            result = fn(ctx)
            return {} if result is None else result
    except (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.InternalError) as exc:
        raise DatabaseUnavailable(f"{task.workflow}.{task.state}: database error: {exc.orig or exc}") from exc
    except sa_exc.DBAPIError as exc:
        # integrity/programming errors are bugs or races: surface them as retryable too, with the cause
        raise DatabaseUnavailable(
            f"{task.workflow}.{task.state}: database rejected the step: {exc.orig or exc}"
        ) from exc
