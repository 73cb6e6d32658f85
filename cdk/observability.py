"""Alarms (to an encrypted SNS topic) and a CloudWatch dashboard."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from saga_outbox.cdk.config import DeploymentConfig
from saga_outbox.cdk.messaging import Messaging
from saga_outbox.cdk.security import EncryptionKey

__all__ = ["RELAY_METRICS_SERVICE", "Observability", "oldest_pending_metric"]

# The relay's Powertools Metrics are created with service="relay" (lambdas/handlers/relay.py),
# which becomes the "service" dimension of every metric it publishes.
RELAY_METRICS_SERVICE = "relay"

GT = cw.ComparisonOperator.GREATER_THAN_THRESHOLD
GTE = cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD


def oldest_pending_metric(namespace: str) -> cw.Metric:
    """The relay's ``OldestPendingAgeSeconds`` gauge (Maximum per minute): the alarm and the
    Fargate relay's scaling policy watch the same metric."""
    return cw.Metric(
        namespace=namespace,
        metric_name="OldestPendingAgeSeconds",
        dimensions_map={"service": RELAY_METRICS_SERVICE},
        statistic="Maximum",
        period=Duration.minutes(1),
    )


class Observability(Construct):
    """Alarms, each raising to :attr:`topic`:

    * ``OldestPendingAge``: custom metric ``OldestPendingAgeSeconds`` (namespace ``SagaOutbox``,
      dimension ``service=relay``, as the relay's Powertools Metrics publish it) above the
      threshold — the relay is behind or down; past 5 minutes a re-send is no longer deduplicated by SQS.
    * ``DeadLetterQueueDepth``: any visible message in the DLQ.
    * ``<Workflow>ExecutionsFailed`` / ``<Workflow>ExecutionsThrottled`` per state machine.
    * ``CompensationFailed``: Step Functions has no per-error metric, so a metric filter on the
      Standard machines' log groups counts ``ExecutionFailed`` events whose error is
      ``CompensationFailed`` (the compiler's terminal Fail state) into ``<namespace>/CompensationFailed``.
    * ``<Function>Errors`` / ``<Function>Throttles`` per Lambda function.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        keys: EncryptionKey,
        messaging: Messaging,
        state_machines: Mapping[str, sfn.StateMachine],
        state_machine_kinds: Mapping[str, str],
        state_machine_logs: Mapping[str, logs.ILogGroup],
        functions: Mapping[str, lambda_.IFunction],
        topic: sns.ITopic | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic: sns.ITopic = topic or sns.Topic(
            self, "AlarmTopic", display_name="saga-outbox alarms", master_key=keys.key, enforce_ssl=True
        )
        if config.alarm_email:
            self.topic.add_subscription(subs.EmailSubscription(config.alarm_email))
        self.alarms: dict[str, cw.Alarm] = {}
        ns = config.metrics_namespace

        oldest = oldest_pending_metric(ns)
        self._alarm(
            "OldestPendingAge",
            oldest,
            threshold=config.oldest_pending_alarm_seconds,
            evaluation_periods=3,
            description="Oldest unpublished outbox row too old: the relay is behind, failing or not running.",
        )
        dlq_depth: list[cw.IMetric] = []
        if messaging.dead_letter_queue is not None:  # unknown for an imported queue
            dlq_depth.append(
                messaging.dead_letter_queue.metric_approximate_number_of_messages_visible(
                    period=Duration.minutes(1), statistic="Maximum"
                )
            )
            self._alarm(
                "DeadLetterQueueDepth",
                dlq_depth[0],
                threshold=0,
                comparison=GT,
                description="Events reached the DLQ after maxReceiveCount failed dispatcher deliveries.",
            )

        compensation_metric: cw.IMetric | None = None
        for name, sm in state_machines.items():
            self._alarm(
                f"{name}ExecutionsFailed",
                sm.metric_failed(period=Duration.minutes(5), statistic="Sum"),
                threshold=1,
                description=f"{name}: executions failed (a successfully compensated saga does not fail).",
            )
            self._alarm(
                f"{name}ExecutionsThrottled",
                sm.metric_throttled(period=Duration.minutes(5), statistic="Sum"),
                threshold=1,
                description=f"{name}: StartExecution throttled (the dispatcher retries through SQS).",
            )
            if state_machine_kinds.get(name) == "STANDARD":
                logs.MetricFilter(
                    self,
                    f"{name}CompensationFailedFilter",
                    log_group=state_machine_logs[name],
                    metric_namespace=ns,
                    metric_name="CompensationFailed",
                    filter_pattern=logs.FilterPattern.all(
                        logs.FilterPattern.string_value("$.type", "=", "ExecutionFailed"),
                        logs.FilterPattern.string_value("$.details.error", "=", "CompensationFailed"),
                    ),
                    metric_value="1",
                    default_value=0,
                )
                compensation_metric = cw.Metric(
                    namespace=ns,
                    metric_name="CompensationFailed",
                    statistic="Sum",
                    period=Duration.minutes(5),
                )
        if compensation_metric is not None:
            self._alarm(
                "CompensationFailed",
                compensation_metric,
                threshold=1,
                description="A saga could not be compensated: partially undone, needs manual repair.",
            )

        for name, fn in functions.items():
            self.alarm_function(name, fn)

        self.oldest_pending_age = oldest
        self.dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=f"saga-outbox-{config.stage}")
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Outbox: oldest pending age (s)", left=[oldest], width=12),
            cw.GraphWidget(
                title="Queue",
                left=[
                    messaging.queue.metric_approximate_number_of_messages_visible(period=Duration.minutes(1)),
                    messaging.queue.metric_approximate_age_of_oldest_message(period=Duration.minutes(1)),
                ],
                right=dlq_depth,
                width=12,
            ),
        )
        self.dashboard.add_widgets(
            *[
                cw.GraphWidget(
                    title=f"{name} executions",
                    left=[
                        sm.metric_started(period=Duration.minutes(5)),
                        sm.metric_succeeded(period=Duration.minutes(5)),
                        sm.metric_failed(period=Duration.minutes(5)),
                        sm.metric_throttled(period=Duration.minutes(5)),
                    ],
                    width=12,
                )
                for name, sm in state_machines.items()
            ]
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Lambda errors / throttles",
                left=[fn.metric_errors(period=Duration.minutes(5)) for fn in functions.values()],
                right=[fn.metric_throttles(period=Duration.minutes(5)) for fn in functions.values()],
                width=12,
            ),
            cw.GraphWidget(
                title="Lambda duration p99",
                left=[
                    fn.metric_duration(period=Duration.minutes(5), statistic="p99")
                    for fn in functions.values()
                ],
                width=12,
            ),
            cw.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms.values()), width=24),
        )

    def alarm_function(self, name: str, fn: lambda_.IFunction) -> None:
        """``<Function>Errors`` and ``<Function>Throttles`` (also for functions added later)."""
        title = "".join(w.capitalize() for w in name.split("_"))
        self._alarm(
            f"{title}Errors",
            fn.metric_errors(period=Duration.minutes(5), statistic="Sum"),
            threshold=1,
            description=f"{name} function errors.",
        )
        self._alarm(
            f"{title}Throttles",
            fn.metric_throttles(period=Duration.minutes(5), statistic="Sum"),
            threshold=1,
            description=f"{name} function throttled.",
        )

    def add_alarm(
        self,
        construct_id: str,
        metric: cw.IMetric,
        *,
        threshold: float,
        description: str,
        evaluation_periods: int = 1,
        comparison: cw.ComparisonOperator = GTE,
        treat_missing_data: cw.TreatMissingData = cw.TreatMissingData.NOT_BREACHING,
    ) -> cw.Alarm:
        """An alarm raising to :attr:`topic`, listed in :attr:`alarms` (also for the constructs
        of other concerns, e.g. the scheduled reconciler)."""
        alarm = cw.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=threshold,
            evaluation_periods=evaluation_periods,
            comparison_operator=comparison,
            treat_missing_data=treat_missing_data,
            alarm_description=description,
        )
        alarm.add_alarm_action(cw_actions.SnsAction(self.topic))
        self.alarms[construct_id] = alarm
        return alarm

    _alarm = add_alarm  # the name the alarms of this module were written with
