"""The app object: a user's module declares its workflows, routes, actions and tables on one
:class:`SagaApp`, and every entry point (CLI, Lambda handlers, CDK construct, local runtime)
is pointed at it (``module:attr``). Registration is explicit; nothing is scanned.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ._errors import AppError

if TYPE_CHECKING:
    import sqlalchemy as sa

    from outbox_relay.destinations import Destination, DestinationKind, Routes
    from saga_outbox.lambdas.tasks import ActionRegistry, StepContext
    from saga_outbox.workflows.definition import Workflow

__all__ = ["EventRoute", "Migration", "SagaApp"]

Action = Callable[["StepContext"], Any]
Migration = Callable[["sa.Connection"], None]
"""Prepares the app's own tables inside one transaction; must be idempotent (``IF NOT EXISTS``)."""
F = TypeVar("F", bound=Callable[..., Any])

_APP_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


@dataclass(frozen=True, kw_only=True)
class EventRoute:
    """Start ``workflow`` for every outbox event of type ``event_type``."""

    event_type: str
    workflow: str

    def __post_init__(self) -> None:
        if not isinstance(self.event_type, str) or not self.event_type.strip():
            raise AppError(f"invalid event_type {self.event_type!r}: must be a non-empty string")
        if not isinstance(self.workflow, str) or not self.workflow:
            raise AppError(f"invalid workflow {self.workflow!r}: must be a workflow name")


class SagaApp:
    """Workflows, the event types that start them, the actions their steps run, and the
    migrations of the app's own tables.

    ::

        app = SagaApp("myshop")
        app.add(Workflow(name="RoomSaga", steps=[...]))
        app.route("RoomRequested", "RoomSaga")

        @app.action("RoomSaga", "book_room")
        def book_room(ctx: StepContext) -> dict: ...

    :meth:`check` (run by every entry point at start-up) refuses an app whose workflows name
    an action or compensation nobody registered, or whose routes name an unknown workflow.
    """

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not _APP_NAME.match(name):
            raise AppError(
                f"invalid app name {name!r}: 1-64 characters, a letter first, "
                "then letters, digits, '_' or '-'"
            )
        self.name = name
        self._workflows: dict[str, Workflow] = {}
        self._routes: list[EventRoute] = []
        self._actions: dict[tuple[str, str], Action] = {}
        self._migrations: list[Migration] = []
        self._destinations: dict[str, Destination] = {}
        self._deliveries: dict[str, tuple[str, ...]] = {}

    def __repr__(self) -> str:
        return f"SagaApp({self.name!r}, workflows={list(self._workflows)})"

    # -- declaration -----------------------------------------------------------------------
    def add(self, workflow: Workflow) -> Workflow:
        """Register ``workflow`` (its name must be unique in the app); returns it."""
        from saga_outbox.workflows.definition import Workflow

        if not isinstance(workflow, Workflow):
            raise AppError(f"app.add() takes a Workflow, got {type(workflow).__name__}: {workflow!r}")
        if workflow.name in self._workflows and self._workflows[workflow.name] != workflow:
            raise AppError(f"app {self.name!r} already has a different workflow named {workflow.name!r}")
        self._workflows[workflow.name] = workflow
        return workflow

    def route(self, event_type: str, workflow: str | Workflow) -> None:
        """Start ``workflow`` (a name or a registered :class:`Workflow`) for each ``event_type`` event."""
        name = workflow if isinstance(workflow, str) else getattr(workflow, "name", workflow)
        route = EventRoute(event_type=event_type, workflow=name)  # type: ignore[arg-type]
        if route not in self._routes:
            self._routes.append(route)

    def action(self, workflow: str, action: str) -> Callable[[F], F]:
        """Decorator: register the function that runs ``action`` (an action, compensation or
        hook name of ``workflow``). It gets a :class:`~saga_outbox.StepContext` and returns a
        JSON-serializable value, the step's output."""
        for what, value in (("workflow", workflow), ("action", action)):
            if not isinstance(value, str) or not value:
                raise AppError(f"@app.action: invalid {what} {value!r}: must be a non-empty string")

        def register(fn: F) -> F:
            if not callable(fn):
                raise AppError(f"@app.action({workflow!r}, {action!r}) decorates a non-callable {fn!r}")
            previous = self._actions.get((workflow, action))
            if previous is not None and previous is not fn:
                raise AppError(f"action {workflow}.{action} is registered twice ({previous!r} and {fn!r})")
            self._actions[(workflow, action)] = fn
            return fn

        return register

    def destination(self, name: str, *, kind: DestinationKind) -> Destination:
        """Declare a destination besides the SQS queue ``"sqs"`` (always there): ``kind`` is
        ``"sns"``, ``"eventbridge"``, ``"kinesis"`` or ``"sqs"``. A relay publishes it when
        given a publisher under this name (``RoutedRelay(publishers={name: ...})``)."""
        from outbox_relay.destinations import Destination
        from outbox_relay.exceptions import ConfigurationError

        try:
            dest = Destination(name=name, kind=kind)
        except ConfigurationError as exc:
            raise AppError(f"app {self.name!r}: {exc}") from exc
        known = self._destinations.get(name)
        if (known is not None and known != dest) or (name == "sqs" and kind != "sqs"):
            raise AppError(f"app {self.name!r} already has a destination {name!r} of another kind")
        self._destinations[name] = dest
        return dest

    def deliver(self, event_type: str, *, to: list[str] | tuple[str, ...]) -> None:
        """Write every ``event_type`` event for each destination of ``to`` (names declared
        with :meth:`destination`, or ``"sqs"``), each published and retried on its own.
        Unrouted event types go to ``"sqs"`` only. Keep ``"sqs"`` in ``to`` for an event
        type that starts a workflow: the dispatcher reads the SQS queue."""
        if not isinstance(event_type, str) or not event_type.strip():
            raise AppError(f"app.deliver: invalid event_type {event_type!r}: must be a non-empty string")
        if isinstance(to, str) or not to:
            raise AppError(f"app.deliver({event_type!r}): to={to!r} must be a non-empty list of names")
        unknown = [n for n in to if n != "sqs" and n not in self._destinations]
        if unknown:
            raise AppError(
                f"app.deliver({event_type!r}) names undeclared destinations {unknown}; "
                f"declared: {sorted({'sqs', *self._destinations})} (app.destination(name, kind=...))"
            )
        self._deliveries[event_type] = tuple(dict.fromkeys(to))

    @property
    def destinations(self) -> tuple[Destination, ...]:
        """The destinations declared with :meth:`destination` (the SQS queue ``"sqs"`` aside)."""
        return tuple(d for d in self._destinations.values() if d.name != "sqs")

    @property
    def outbox_routes(self) -> Routes:
        """The destinations and deliveries as :class:`outbox_relay.Routes`."""
        from outbox_relay.destinations import SQS_DESTINATION, Routes

        dests = {"sqs": SQS_DESTINATION, **self._destinations}
        return Routes(destinations=tuple(dests.values()), routes=dict(self._deliveries))

    def destinations_for(self, event_type: str) -> tuple[Destination, ...]:
        """Where an event of ``event_type`` is written for (default: the SQS queue)."""
        return self.outbox_routes.for_event(event_type)

    def migration(self, fn: F) -> F:
        """Decorator: a function ``(conn) -> None`` that creates or upgrades the app's own
        tables in one transaction. The local runtime runs them at start-up; in production run
        them from your deploy (``saga-outbox app migrate --app M:A``) or your own migration tool."""
        if not callable(fn):
            raise AppError(f"@app.migration decorates a non-callable {fn!r}")
        if fn not in self._migrations:
            self._migrations.append(fn)
        return fn

    # -- reading -----------------------------------------------------------------------------
    @property
    def workflows(self) -> tuple[Workflow, ...]:
        """Every workflow, in registration order."""
        return tuple(self._workflows.values())

    @property
    def routes(self) -> tuple[EventRoute, ...]:
        return tuple(self._routes)

    @property
    def actions(self) -> Mapping[tuple[str, str], Action]:
        return dict(self._actions)

    @property
    def migrations(self) -> tuple[Migration, ...]:
        return tuple(self._migrations)

    def get_workflow(self, name: str) -> Workflow:
        try:
            return self._workflows[name]
        except KeyError:
            from saga_outbox.workflows.exceptions import UnknownWorkflowError

            raise UnknownWorkflowError(
                f"app {self.name!r} has no workflow {name!r}; it has {sorted(self._workflows)}"
            ) from None

    def workflows_for(self, event_type: str) -> list[Workflow]:
        """The workflows one event of ``event_type`` starts, in route order (empty: none)."""
        out: list[Workflow] = []
        for route in self._routes:
            if route.event_type == event_type:
                workflow = self.get_workflow(route.workflow)
                if workflow not in out:
                    out.append(workflow)
        return out

    def max_event_bytes(self, event_type: str) -> int:
        """The largest message an event of ``event_type`` may be: SQS's 1 MiB, or less when it
        starts a workflow whose input budget (256 KiB of Step Functions state minus what its
        steps may add) is smaller. :meth:`enqueue` and ``ctx.enqueue`` refuse larger ones
        before any SQL; carry large payloads by reference (claim-check). Each destination's
        own limit (SNS, EventBridge: 256 KB) is checked by enqueue on top, naming it."""
        from outbox_relay.envelope import SQS_MAX_MESSAGE_BYTES
        from saga_outbox.workflows.budget import workflow_input_budget_bytes

        budgets = [workflow_input_budget_bytes(w) for w in self.workflows_for(event_type)]
        return max(0, min([SQS_MAX_MESSAGE_BYTES, *budgets]))

    def enqueue(
        self,
        target: Any,
        *,
        event_type: str,
        payload: Mapping[str, Any],
        aggregate_type: str,
        aggregate_key: str,
        **options: Any,
    ) -> Any:
        """``outbox_relay.enqueue`` in the caller's transaction, refusing (before SQL) an event
        too large for a workflow it starts (:meth:`max_event_bytes`)."""
        import outbox_relay

        return outbox_relay.enqueue(
            target,
            event_type=event_type,
            payload=payload,
            aggregate_type=aggregate_type,
            aggregate_key=aggregate_key,
            max_message_bytes=self.max_event_bytes(event_type),
            **{"destinations": self.destinations_for(event_type), **options},
        )

    def functions(self) -> set[str]:
        """The logical Lambda functions the workflows invoke (``Workflow.function``)."""
        return {wf.function for wf in self._workflows.values()}

    def registry(self) -> ActionRegistry:
        """The ``(workflow, action) -> function`` table the steps handler runs."""
        from saga_outbox.lambdas.tasks import ActionRegistry

        return ActionRegistry(self._actions)

    def __iter__(self) -> Iterator[Workflow]:
        return iter(self._workflows.values())

    # -- checks ------------------------------------------------------------------------------
    def missing_actions(self) -> list[str]:
        """``Workflow.action`` of every action, compensation and hook nobody registered."""
        missing: list[str] = []
        for wf in self._workflows.values():
            for step in (*wf.steps, *wf.hooks()):
                for name in (step.action, step.compensation):
                    if name and (wf.name, name) not in self._actions:
                        missing.append(f"{wf.name}.{name}")
        return missing

    def check(self) -> SagaApp:
        """Refuse an incomplete app with one message naming every problem; returns the app."""
        problems: list[str] = []
        if not self._workflows:
            problems.append("it has no workflow (app.add(Workflow(...)))")
        missing = self.missing_actions()
        if missing:
            problems.append(
                "no function registered for " + ", ".join(missing) + " (@app.action(workflow, action))"
            )
        unknown = sorted({r.workflow for r in self._routes if r.workflow not in self._workflows})
        if unknown:
            problems.append(f"routes name unknown workflows {unknown}; known: {sorted(self._workflows)}")
        extra = sorted(
            f"{w}.{a}" for w, a in self._actions if w not in self._workflows or not _declares(self, w, a)
        )
        if extra:
            problems.append(f"actions registered for no step: {', '.join(extra)}")
        unstarted = sorted(
            t
            for t, to in self._deliveries.items()
            if "sqs" not in to and any(r.event_type == t for r in self._routes)
        )
        if unstarted:
            problems.append(
                f"event types {unstarted} start workflows but are not delivered to 'sqs', the queue "
                "the dispatcher reads: add 'sqs' to app.deliver(..., to=[...])"
            )
        if problems:
            raise AppError(f"app {self.name!r} is incomplete: " + "; ".join(problems))
        return self

    def migrate(self, engine: sa.Engine) -> int:
        """Run every migration, each in its own transaction; returns how many ran."""
        for fn in self._migrations:
            with engine.begin() as conn:
                fn(conn)
        return len(self._migrations)


def _declares(app: SagaApp, workflow: str, action: str) -> bool:
    wf = app.get_workflow(workflow)
    return any(action in (s.action, s.compensation) for s in (*wf.steps, *wf.hooks()))
