"""Scheduled reconciler: one :class:`~saga_outbox.ops.reconcile.Reconciler` pass per invocation
(EventBridge schedule, see ``saga_outbox.cdk.reconciler``).

Every finding type is emitted as a Powertools metric on every run, zeros included (the
construct's alarms then see data on a good run, not "missing"), and every finding is logged
with its execution name and event id, so the alarm's log search leads straight to it.
Express machines are reported as skipped without a call: on AWS ListExecutions does not serve
them, and the function is granted nothing on them.
"""

from __future__ import annotations

from typing import Any

from outbox_relay import PowertoolsMetricsSink

from ..runtime import Handler, LazyHandler, Runtime
from ._observability import observability

#: the "service" dimension of the reconciler's metrics (the construct's alarms watch it)
SERVICE = "reconciler"


def make_handler(runtime: Runtime) -> Handler:
    """Build the reconciler; needs the database, SAGA_OUTBOX_APP and STATE_MACHINE_ARNS (an ARN
    for every routed workflow, as the dispatcher gets them). A bad window
    (RECONCILE_SINCE_HOURS not reaching past RECONCILE_OLDER_THAN_MINUTES) fails the cold start."""
    from saga_outbox.ops.reconcile import Reconciler

    config = runtime.config
    config.require("database", "state_machine_arns")
    logger, tracer, metrics = observability(SERVICE)
    reconciler = Reconciler(
        runtime.app,
        engine=runtime.engine,
        sfn_client=runtime.sfn_client,
        state_machine_arns=config.state_machine_arns,
        schema=config.outbox_schema,
        older_than_minutes=config.reconcile_older_than_minutes,
        since_hours=config.reconcile_since_hours,
        metrics=PowertoolsMetricsSink(metrics),
        list_express=False,
    )

    @logger.inject_lambda_context(clear_state=True)
    @tracer.capture_lambda_handler
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        report = reconciler.run()
        for d in report.lost_dispatches:
            logger.warning(
                "lost dispatch",
                extra={
                    "workflow": d.workflow,
                    "event_id": d.event_id,
                    "event_type": d.event_type,
                    "execution_name": d.execution_name,
                    "execution_arn": d.execution_arn,
                    "action": d.action,
                    "archived": d.archived,
                    "error": d.error,
                },
            )
        for s in report.stuck:
            logger.warning(
                "stuck execution",
                extra={
                    "workflow": s.workflow,
                    "execution_name": s.execution_name,
                    "execution_arn": s.execution_arn,
                    "current_state": s.current_state,
                    "running_seconds": s.running_seconds,
                    "deadline_seconds": s.deadline_seconds,
                },
            )
        for c in report.compensation_failed:
            logger.error(
                "saga CompensationFailed",
                extra={
                    "workflow": c.workflow,
                    "event_id": c.event_id,
                    "execution_name": c.execution_name,
                    "execution_arn": c.execution_arn,
                    "undone": list(c.undone),
                    "not_undone": list(c.not_undone),
                    "failed": list(c.failed),
                },
            )
        for x in report.failed:
            logger.warning(
                "failed execution",
                extra={
                    "workflow": x.workflow,
                    "execution_name": x.execution_name,
                    "execution_arn": x.execution_arn,
                    "status": x.status,
                    "error": x.error,
                    "cause": x.cause,
                },
            )
        logger.info(
            "reconciled",
            extra={"counts": report.counts, "events_checked": report.events_checked},
        )
        return {"events_checked": report.events_checked, "counts": report.counts}

    return handler


handler = LazyHandler(make_handler)
