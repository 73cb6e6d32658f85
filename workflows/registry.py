"""The workflows this project deploys, and which event types start them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from workflows.definition import Workflow
from workflows.exceptions import UnknownWorkflowError, WorkflowValidationError
from workflows.naming import validate_workflow_name


def all_workflows() -> list[Workflow]:
    """Every workflow to deploy (CDK) and run (local runtime), in a stable order."""
    from workflows.orders import ORDER_PROJECTION, ORDER_SAGA

    return [ORDER_SAGA, ORDER_PROJECTION]


def get_workflow(name: str) -> Workflow:
    for workflow in all_workflows():
        if workflow.name == name:
            return workflow
    known = ", ".join(w.name for w in all_workflows())
    raise UnknownWorkflowError(f"unknown workflow {name!r}; known: {known}")


@dataclass(frozen=True, kw_only=True)
class EventRoute:
    """Start ``workflow`` (a workflow name) for every outbox event of type ``event_type``."""

    event_type: str
    workflow: str

    def __post_init__(self) -> None:
        if not isinstance(self.event_type, str) or not self.event_type.strip():
            raise WorkflowValidationError(
                f"invalid event_type {self.event_type!r}: must be a non-empty string"
            )
        validate_workflow_name(self.workflow)


def default_routes() -> list[EventRoute]:
    return [
        EventRoute(event_type="OrderPlaced", workflow="OrderSaga"),
        EventRoute(event_type="OrderPlaced", workflow="OrderProjection"),
        EventRoute(event_type="OrderConfirmed", workflow="OrderProjection"),
        EventRoute(event_type="OrderCancelled", workflow="OrderProjection"),
    ]


def routing_table(routes: Iterable[EventRoute] | None = None) -> dict[str, list[Workflow]]:
    """event_type -> workflows it starts (route order, duplicates removed); every route's
    workflow must be registered."""
    table: dict[str, list[Workflow]] = {}
    for route in default_routes() if routes is None else routes:
        workflow = get_workflow(route.workflow)
        targets = table.setdefault(route.event_type, [])
        if workflow not in targets:
            targets.append(workflow)
    return table


def workflows_for_event(event_type: str, routes: Iterable[EventRoute] | None = None) -> list[Workflow]:
    """The workflows one event of ``event_type`` starts (empty when none is routed)."""
    return routing_table(routes).get(event_type, [])
