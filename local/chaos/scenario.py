"""What chaos needs to know about an app's domain, and how the app supplies it.

Most of what ``saga-outbox chaos`` checks needs no domain knowledge: plain probe events (lost,
duplicates, order per aggregate) and the sagas' shape, read off the compiled workflows (every
execution ended completed / compensated / CompensationFailed, compensations in reverse order).
Two things only the app knows: how to start one saga *as the app does* (its business write and
the outbox row in one transaction, with business failures chosen by a seeded rng), and which
business side effects happened twice or were left behind by a saga that was undone. A
:class:`ChaosScenario` supplies both.

It is passed explicitly, ``saga-outbox chaos --app M:A --scenario M:S``, not registered on the
:class:`~saga_outbox.SagaApp`: a scenario is test code (simulated failures, audit queries over
the app's tables) and the app object is what every Lambda cold start imports, so the harness
must not ride along on it; an app may also have several scenarios (e.g. a failure-heavy one).
``M:S`` names a factory ``(app, *, run_id) -> ChaosScenario`` called once per run, so that a
scenario can put its business tables on run-private names (a shared database never mixes two
runs). Without a scenario, chaos starts each saga with a bare event of a routed type and
reports the domain checks it could not run under ``checks_skipped``.
"""

from __future__ import annotations

import importlib
import os
import random
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import sqlalchemy as sa

from outbox_relay import enqueue
from saga_outbox._app import SagaApp
from saga_outbox._errors import AppError
from saga_outbox.workflows import WorkflowKind

__all__ = [
    "DOMAIN_CHECKS",
    "ChaosScenario",
    "DomainAudit",
    "GenericSagas",
    "ScenarioFactory",
    "load_scenario",
]

#: The checks only a scenario can run, as named in a report's ``checks_skipped``.
DOMAIN_CHECKS: Mapping[str, str] = {
    "duplicate_side_effects": "business effects done more than once (needs the app's tables)",
    "effects_left_behind": "effects of undone sagas that were never undone (needs the app's tables)",
    "business_lost": "business entities whose saga never started or whose events were dropped",
    "business_unfinished": "business entities left mid-saga without a CompensationFailed",
}


@dataclass(frozen=True, kw_only=True)
class DomainAudit:
    """The app's verdict on its own tables after a run; every count is an excess over none."""

    #: per kind of effect (payments, emails, ...): occurrences beyond the first
    duplicate_side_effects: Mapping[str, int]
    #: per kind of effect: effects of a compensated saga that are still in place (a saga that
    #: ended in CompensationFailed lists its own; it alarms). None: not checked by this app.
    effects_left_behind: Mapping[str, int] | None = None
    #: per kind: business events or entities lost (e.g. orders that never got a saga); all counted
    lost: Mapping[str, int] = field(default_factory=dict)
    #: business entities left mid-saga that no CompensationFailed explains
    unfinished: int = 0


@runtime_checkable
class ChaosScenario(Protocol):
    """One run's domain knowledge. See the module docstring for how an app supplies it."""

    #: the app to run: the given one, or a copy of it on this run's own tables
    app: SagaApp
    #: the Standard workflow that each :meth:`start` begins (its executions pace the producer)
    saga: str

    def start(self, conn: sa.Connection, *, rng: random.Random, outbox_schema: str) -> None:
        """Inside ``conn``'s open transaction (never commit it): the business write and the
        saga-starting outbox event (``outbox_relay.enqueue(conn, ..., schema=outbox_schema)``),
        with business failures drawn from ``rng`` only, so a seed replays the same run."""
        ...

    def audit(
        self,
        engine: sa.Engine,
        *,
        sfn_client: Any,
        state_machine_arns: Mapping[str, str],
        outbox_schema: str,
    ) -> DomainAudit:
        """After the run has settled: duplicates and left-behind effects in the app's tables."""
        ...


ScenarioFactory = Callable[..., ChaosScenario]
"""``(app: SagaApp, *, run_id: str) -> ChaosScenario``; what ``--scenario M:S`` names."""


class GenericSagas:
    """Starts sagas of an app that supplies no scenario: a bare event (``{"chaos_seq": n}``)
    of each event type routed to a Standard workflow, in turn, on its own aggregate. Actions
    that need more in the payload fail and compensate: the generic checks still hold then."""

    def __init__(self, app: SagaApp) -> None:
        self.app = app
        self.routes: list[tuple[str, str]] = []  # (event type, its first Standard workflow)
        for event_type in dict.fromkeys(r.event_type for r in app.routes):
            standard = [w for w in app.workflows_for(event_type) if w.kind is WorkflowKind.STANDARD]
            if standard:
                self.routes.append((event_type, standard[0].name))
        self.sagas = frozenset(w for _, w in self.routes)
        self._n = 0

    def start(self, conn: sa.Connection, *, rng: random.Random, outbox_schema: str) -> None:
        if not self.routes:
            raise AppError(
                f"app {self.app.name!r} routes no event type to a Standard workflow: run chaos with --sagas 0"
            )
        event_type, _ = self.routes[self._n % len(self.routes)]
        self._n += 1
        enqueue(
            conn,
            aggregate_type="chaos_saga",
            aggregate_key=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            event_type=event_type,
            payload={"chaos_seq": self._n},
            schema=outbox_schema,
        )


def load_scenario(spec: str, app: SagaApp, *, run_id: str) -> ChaosScenario:
    """Import ``"module:attr"`` (a :data:`ScenarioFactory`) and build this run's scenario."""
    module_name, _, attr = spec.strip().partition(":")
    if not module_name or not attr or not all(p.isidentifier() for p in module_name.split(".")):
        raise AppError(f"invalid scenario {spec!r}: expected 'module:attr', e.g. 'myshop.chaos:scenario'")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like --app: run from the project root
    try:
        factory: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise AppError(f"cannot import scenario module {module_name!r} (from {spec!r}): {exc}") from exc
    for part in attr.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise AppError(f"module {module_name!r} has no attribute {attr!r} (from {spec!r})")
    if not callable(factory):
        raise AppError(f"scenario {spec!r} is a {type(factory).__name__}, not a factory (app, *, run_id)")
    scenario = factory(app, run_id=run_id)
    check_scenario(scenario, spec)
    return scenario


def check_scenario(scenario: object, what: str) -> ChaosScenario:
    """Refuse a scenario missing a member, or whose saga is not a Standard workflow of its app."""
    if not isinstance(scenario, ChaosScenario):
        missing = [m for m in ("app", "saga", "start", "audit") if not hasattr(scenario, m)]
        raise AppError(f"scenario {what!r} is not a ChaosScenario (missing {missing})")
    if not isinstance(scenario.app, SagaApp):
        raise AppError(f"scenario {what!r}: .app is a {type(scenario.app).__name__}, not a SagaApp")
    workflow = scenario.app.get_workflow(scenario.saga)
    if workflow.kind is not WorkflowKind.STANDARD:
        raise AppError(f"scenario {what!r}: saga {scenario.saga!r} is not a Standard workflow")
    return scenario
