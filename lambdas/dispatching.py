"""Start the Step Functions executions an outbox event is routed to.

Standard workflows: ``StartExecution(name=saga_outbox.workflows.execution_name(workflow, event_id))``. The
name is a pure function of the event, so a redelivered or re-sent message maps to the same
execution: the service returns the same execution (same name + input while open) or raises
``ExecutionAlreadyExists`` (closed, or different input), and both mean "already started" here.

Express workflows: names are not deduplicated and execution is at-least-once, so each start
gets a fresh name; the input (the envelope) carries ``event_id``, the idempotency key the
Express steps dedup on (``order_view_events``, ``notifications``).

Trace: every execution of an event is started with ``traceHeader`` = the record's
``AWSTraceHeader`` (see :func:`execution_trace_header`), so the execution and its steps join
the trace of the request that enqueued the event (docs/tracing.md).

Any other failure (ThrottlingException, 5xx, a missing state machine, a network error) raises
:class:`~saga_outbox.lambdas.exceptions.DispatchFailed`: the SQS record is reported as a batch item
failure and redelivered (then dead-lettered), never dropped. Event types with no route are
logged and acknowledged: nothing subscribes to them, so redelivering cannot help.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from outbox_relay import InvalidTraceHeaderError, OutboxEnvelope
from outbox_relay.tracing import parse_xray_header, trace_id_of, xray_header_from_headers
from saga_outbox.workflows.definition import WorkflowKind
from saga_outbox.workflows.links import console_execution_url
from saga_outbox.workflows.naming import execution_name

from .exceptions import ConfigurationError, DispatchFailed

if TYPE_CHECKING:
    from saga_outbox._app import SagaApp

__all__ = ["Dispatcher", "Route", "StartedExecution", "build_routes", "execution_trace_header"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Route:
    workflow: str
    kind: WorkflowKind
    state_machine_arn: str


@dataclass(frozen=True)
class StartedExecution:
    workflow: str
    name: str
    execution_arn: str
    already_existed: bool
    console_url: str | None


def build_routes(app: SagaApp, state_machine_arns: Mapping[str, str]) -> dict[str, list[Route]]:
    """event type -> routes, from the app's routes; every routed workflow needs an ARN in
    ``state_machine_arns`` (STATE_MACHINE_ARNS), checked here at cold start."""
    table: dict[str, list[Route]] = {}
    for event_route in app.routes:
        workflow = app.get_workflow(event_route.workflow)
        arn = state_machine_arns.get(workflow.name)
        if not arn:
            raise ConfigurationError(
                f"STATE_MACHINE_ARNS has no ARN for workflow {workflow.name!r} "
                f"(routed from {event_route.event_type}); it has {sorted(state_machine_arns)}"
            )
        targets = table.setdefault(event_route.event_type, [])
        route = Route(workflow=workflow.name, kind=WorkflowKind(workflow.kind), state_machine_arn=arn)
        if route not in targets:
            targets.append(route)
    return table


def execution_trace_header(aws_trace_header: str | None, envelope: OutboxEnvelope) -> str | None:
    """The ``traceHeader`` to start an event's executions with: the SQS record's
    ``AWSTraceHeader`` (what the relay sent), else the trace the envelope's headers carry (a
    message sent by something that does not set the attribute). Malformed ones are dropped:
    Step Functions would refuse the start, and a trace is never a reason to fail an event."""
    if aws_trace_header:
        try:
            return parse_xray_header(aws_trace_header).to_xray()
        except InvalidTraceHeaderError as exc:
            _log.debug("ignoring the record's AWSTraceHeader: %s", exc)
    return xray_header_from_headers(envelope.headers)


def _execution_arn(state_machine_arn: str, name: str) -> str:
    return state_machine_arn.replace(":stateMachine:", ":execution:", 1) + f":{name}"


class Dispatcher:
    """Routes envelopes to workflows and starts them. ``sfn_client`` is a boto3 Step Functions
    client (inject moto's locally); ``logger`` may be a Powertools Logger."""

    def __init__(
        self,
        *,
        sfn_client: Any,
        routes: Mapping[str, Sequence[Route]],
        logger: Any = None,
    ) -> None:
        self._sfn = sfn_client
        self._routes = {k: list(v) for k, v in routes.items()}
        self._log = logger or _log

    def dispatch(
        self, envelope: OutboxEnvelope, *, trace_header: str | None = None
    ) -> list[StartedExecution]:
        """Start every workflow routed for ``envelope``. ``trace_header`` (X-Ray format, see
        :func:`execution_trace_header`) becomes each execution's ``traceHeader``, so the
        execution and its steps continue the request's trace."""
        routes = self._routes.get(envelope.event_type)
        if not routes:
            self._log.info(
                "no workflow routed for event type; acknowledged",
                extra={
                    "event_type": envelope.event_type,
                    "event_id": str(envelope.event_id),
                    "aggregate": envelope.group_id,
                    "trace_id": trace_id_of(trace_header),
                },
            )
            return []
        body = envelope.to_json()
        return [self._start(route, envelope, body, trace_header) for route in routes]

    def _start(
        self, route: Route, envelope: OutboxEnvelope, body: str, trace_header: str | None
    ) -> StartedExecution:
        base = execution_name(route.workflow, envelope.event_id)
        standard = route.kind is WorkflowKind.STANDARD
        # Express: a fresh name per start (names are not deduplicated); event_id in the input is the key.
        name = base if standard else f"{base[:47]}-{uuid.uuid4().hex}"
        extra = {
            "workflow": route.workflow,
            "event_id": str(envelope.event_id),
            "aggregate": envelope.group_id,
            "execution_name": name,
            "trace_id": trace_id_of(trace_header),
        }
        already = False
        trace = {"traceHeader": trace_header} if trace_header else {}
        try:
            arn = self._sfn.start_execution(
                stateMachineArn=route.state_machine_arn, name=name, input=body, **trace
            )["executionArn"]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if standard and code == "ExecutionAlreadyExists":
                # Same name <=> same event: it was started before (redelivery or a late re-send).
                arn, already = _execution_arn(route.state_machine_arn, name), True
            else:
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                raise DispatchFailed(
                    f"StartExecution {route.workflow} for event {envelope.event_id} failed: {code} "
                    f"(HTTP {status}); the message will be redelivered"
                ) from exc
        except BotoCoreError as exc:
            raise DispatchFailed(
                f"StartExecution {route.workflow} for event {envelope.event_id} failed: {exc}; "
                "the message will be redelivered"
            ) from exc
        try:
            link: str | None = console_execution_url(arn)
        except ValueError:  # a partition without a public console (aws-iso*): no link
            link = None
        self._log.info(
            "execution already started for this event" if already else "execution started",
            extra={**extra, "execution_arn": arn, "console_url": link, "already_existed": already},
        )
        return StartedExecution(
            workflow=route.workflow, name=name, execution_arn=arn, already_existed=already, console_url=link
        )
