"""The small user app the tests share: a two-step room saga (BookRoom, compensable; ChargeCard,
the pivot), optionally with an Express log workflow, written as a user would on the public API."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from saga_outbox import SagaApp, Step, StepContext, Workflow, WorkflowKind

ROOM_SAGA = Workflow(
    name="RoomSaga",
    kind=WorkflowKind.STANDARD,
    steps=[
        Step(name="BookRoom", action="book_room", compensation="cancel_room"),
        Step(name="ChargeCard", action="charge_card"),
    ],
)
ROOM_LOG = Workflow(
    name="RoomLog", kind=WorkflowKind.EXPRESS, steps=[Step(name="Log", action="log", idempotent=True)]
)


def room_app(
    *,
    with_log: bool = False,
    actions: Mapping[str, Callable[[StepContext], Any]] | None = None,
) -> SagaApp:
    """``RoomRequested`` starts RoomSaga (and RoomLog with ``with_log``, which ``RoomBooked`` also
    starts); ``actions`` replaces the default do-nothing functions by name."""
    app = SagaApp("rooms")
    app.add(ROOM_SAGA)
    app.route("RoomRequested", "RoomSaga")
    names = {"RoomSaga": ("book_room", "cancel_room", "charge_card")}
    if with_log:
        app.add(ROOM_LOG)
        app.route("RoomRequested", "RoomLog")
        app.route("RoomBooked", "RoomLog")
        names["RoomLog"] = ("log",)
    for workflow, actions_of in names.items():
        for action in actions_of:
            app.action(workflow, action)((actions or {}).get(action, lambda ctx: {}))
    return app
