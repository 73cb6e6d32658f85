"""The scheduled reconciler: ``saga_outbox.lambdas.handlers.reconciler`` on an EventBridge
schedule, its least-privilege role, its alarms and its dashboard row.

One pass (``saga_outbox.ops.reconcile.Reconciler``) every ``reconcile_every_minutes`` starts
the Standard executions whose dispatch was lost and reports stuck, CompensationFailed and
failed executions as one metric each per run (zeros included). It runs in the VPC with the
database access the other database functions get, with reserved concurrency 1 (two passes at
once would be safe, just pointless; its connections are counted in
:mod:`saga_outbox.cdk.concurrency`).

Step Functions permissions, on the app's Standard state machines only: ``ListExecutions``,
``StartExecution`` (same name as the dispatcher's, so idempotent), ``DescribeStateMachine``;
on their executions ``DescribeExecution``, ``GetExecutionHistory`` and
``DescribeStateMachineForExecution`` (the CompensationFailed report reads the definition the
execution ran). Express machines get nothing: ListExecutions does not serve them, and the
handler reports them as skipped without asking.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Aws, Duration, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from saga_outbox.cdk.concurrency import ConcurrencyPlan
from saga_outbox.cdk.config import DeploymentConfig
from saga_outbox.cdk.functions import Functions
from saga_outbox.cdk.nag import acknowledge
from saga_outbox.cdk.observability import GTE, Observability
from saga_outbox.cdk.orchestration import Orchestration
from saga_outbox.ops._reconcile_findings import METRICS

__all__ = ["RECONCILER_METRICS_SERVICE", "ScheduledReconciler"]

#: the "service" dimension of the handler's Powertools Metrics (lambdas/handlers/reconciler.py)
RECONCILER_METRICS_SERVICE = "reconciler"
#: AWS Lambda's ceiling
_MAX_TIMEOUT_SECONDS = 900

#: finding type -> (alarm id, what it means); see docs/operations.md for what to do
_ALARMS = {
    "started": (
        "ReconcilerRepairedLostDispatches",
        "The reconciler started executions whose dispatch was lost: something upstream (DLQ, "
        "dispatcher, retention) is losing work.",
    ),
    "start_failures": (
        "ReconcilerStartFailures",
        "The reconciler found lost dispatches it could not start (throttled, refused); the next run retries.",
    ),
    "stuck": (
        "ReconcilerStuckExecutions",
        "Standard executions are RUNNING past their workflow's deadline (an unanswered task token?).",
    ),
    "compensation_failed": (
        "ReconcilerCompensationFailed",
        "A saga of the reconciler's window ended CompensationFailed: partially undone, repair by hand.",
    ),
}


class ScheduledReconciler(Construct):
    """The reconciler function (:attr:`function`), its :attr:`schedule` and its alarms."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        functions: Functions,
        concurrency: ConcurrencyPlan,
        app_spec: str,
        orchestration: Orchestration,
        observability: Observability,
    ) -> None:
        super().__init__(scope, construct_id)
        every = Duration.minutes(config.reconcile_every_minutes)
        state_machines = orchestration.state_machines
        arns = {name: sm.state_machine_arn for name, sm in state_machines.items()}
        self.function: lambda_.Function = functions.add_function(
            "Reconciler",
            "reconciler",
            environment={
                # every routed workflow's ARN, as the dispatcher gets them; only the Standard
                # ones are ever called (and granted)
                "STATE_MACHINE_ARNS": Stack.of(self).to_json_string(arns),
                "SAGA_OUTBOX_APP": app_spec,
                "RECONCILE_OLDER_THAN_MINUTES": str(config.reconcile_older_than_minutes),
                "RECONCILE_SINCE_HOURS": str(config.reconcile_since_hours),
            },
            timeout=Duration.seconds(min(every.to_seconds(), _MAX_TIMEOUT_SECONDS)),
            reserved_concurrency=concurrency.reconciler,
        )
        # A pass throttled by the reservation (the previous one still running) is dropped, not
        # queued for hours by Lambda's async retries: the next scheduled pass does the same job.
        self.function.configure_async_invoke(
            retry_attempts=0, max_event_age=Duration.seconds(max(60, min(every.to_seconds(), 21_600)))
        )
        self._grant(state_machines, orchestration.names, orchestration.kinds)
        self.schedule = events.Rule(
            self,
            "Schedule",
            description="Repair lost Standard dispatches; report stuck and CompensationFailed sagas",
            schedule=events.Schedule.rate(every),
            targets=[targets.LambdaFunction(self.function, retry_attempts=0)],
        )
        self.metrics = {
            kind: cw.Metric(
                namespace=config.metrics_namespace,
                metric_name=name,
                dimensions_map={"service": RECONCILER_METRICS_SERVICE},
                statistic="Maximum",
                period=every,
            )
            for kind, name in METRICS.items()
        }
        self.alarms: dict[str, cw.Alarm] = {}
        for kind, (alarm_id, description) in _ALARMS.items():
            self.alarms[alarm_id] = observability.add_alarm(
                alarm_id, self.metrics[kind], threshold=1, comparison=GTE, description=description
            )
        # Every pass reports every metric, so no data for three periods means no pass ran (the
        # schedule is off, the function fails before reporting, or cannot start).
        self.alarms["ReconcilerNotReporting"] = observability.add_alarm(
            "ReconcilerNotReporting",
            self.metrics["lost_dispatches"].with_(statistic="SampleCount"),
            threshold=1,
            comparison=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
            evaluation_periods=3,
            treat_missing_data=cw.TreatMissingData.BREACHING,
            description="The scheduled reconciler has not reported for three periods.",
        )
        observability.alarm_function("reconciler", self.function)
        observability.dashboard.add_widgets(
            cw.GraphWidget(
                title="Reconciler findings per run",
                left=[self.metrics[k] for k in ("lost_dispatches", "started", "start_failures")],
                right=[self.metrics[k] for k in ("stuck", "compensation_failed", "failed")],
                width=12,
            ),
            cw.AlarmStatusWidget(title="Reconciler alarms", alarms=list(self.alarms.values()), width=12),
        )

    def _grant(
        self,
        state_machines: Mapping[str, sfn.StateMachine],
        names: Mapping[str, str],
        kinds: Mapping[str, str],
    ) -> None:
        standard = sorted(n for n in state_machines if kinds.get(n) == "STANDARD")
        if not standard:
            return
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:ListExecutions", "states:StartExecution", "states:DescribeStateMachine"],
                resources=[state_machines[n].state_machine_arn for n in standard],
            )
        )
        executions = [
            f"arn:{Aws.PARTITION}:states:{Aws.REGION}:{Aws.ACCOUNT_ID}:execution:{names[n]}:*"
            for n in standard
        ]
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=[
                    "states:DescribeExecution",
                    "states:GetExecutionHistory",
                    "states:DescribeStateMachineForExecution",
                ],
                resources=executions,
            )
        )
        for n in standard:
            acknowledge(
                self.function.role or self.function,
                f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:"
                f"execution:{names[n]}:*]",
                f"Executions of {names[n]} only: their names derive from event ids unknown at deploy time.",
            )
