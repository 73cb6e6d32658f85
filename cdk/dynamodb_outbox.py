"""DynamoDB as the outbox (``SagaOutbox(..., dynamodb_outbox=True)``): the outbox table, its
stream and the stream consumer function that publishes to the SQS FIFO queue.

* Table: ``pk``/``sk`` strings (``outbox_relay.dynamodb``'s layout), stream ``NEW_IMAGE``,
  TTL on ``expires_at``, point-in-time recovery, on-demand billing, AWS-managed encryption.
* Consumer: ``saga_outbox.lambdas.handlers.stream.handler`` on the stream, from
  ``TRIM_HORIZON``, filtered to ``INSERT`` of event items, ``ReportBatchItemFailures``,
  bisect on error, bounded retries and record age, parallelization factor 1 (with more,
  Lambda keeps order per item only, and each event is its own item), failures to a standard
  SQS queue (Lambda's on-failure destinations cannot be FIFO).
* Grants: the consumer reads the stream (the event source's grant) and sends to the queue;
  :meth:`DynamoDbOutboxTable.grant_write` gives your writers the item actions
  ``TransactWriteItems`` needs on this table, nothing else.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from saga_outbox.cdk.functions import Functions
from saga_outbox.cdk.messaging import Messaging
from saga_outbox.cdk.nag import acknowledge

__all__ = ["DynamoDbOutboxTable"]

#: the stream keeps records 24 h; past that a record is gone whatever the mapping says
MAX_RECORD_AGE = Duration.hours(24)
RETRY_ATTEMPTS = 100
BATCH_SIZE = 100
STREAM_TIMEOUT = Duration.seconds(60)


class DynamoDbOutboxTable(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: Functions,
        messaging: Messaging,
        retry_attempts: int = RETRY_ATTEMPTS,
    ) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.TableV2(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            dynamo_stream=dynamodb.StreamViewType.NEW_IMAGE,
            time_to_live_attribute="expires_at",
            billing=dynamodb.Billing.on_demand(),
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryptionV2.aws_managed_key(),
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,  # it holds events not yet published
        )
        self.failures = sqs.Queue(
            self,
            "StreamFailures",
            # SSE-SQS: Lambda's on-failure send needs no KMS grant with wildcard actions
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        acknowledge(
            self.failures,
            "AwsSolutions-SQS3",
            "This queue is the stream event source's on-failure destination (a dead-letter queue "
            "for discarded stream batches); it needs no DLQ of its own.",
        )
        self.function: lambda_.Function = functions.add_function(
            "Stream",
            "stream",
            environment={"QUEUE_URL": messaging.queue.queue_url},
            database=False,
            timeout=STREAM_TIMEOUT,
        )
        messaging.grant_send(self.function)
        self.function.add_event_source(
            sources.DynamoEventSource(
                self.table,
                starting_position=lambda_.StartingPosition.TRIM_HORIZON,
                batch_size=BATCH_SIZE,
                bisect_batch_on_error=True,
                report_batch_item_failures=True,
                retry_attempts=retry_attempts,
                max_record_age=MAX_RECORD_AGE,
                parallelization_factor=1,
                on_failure=sources.SqsDlq(self.failures),
                filters=[
                    lambda_.FilterCriteria.filter(
                        {
                            "eventName": lambda_.FilterRule.is_equal("INSERT"),
                            "dynamodb": {"NewImage": {"kind": {"S": lambda_.FilterRule.is_equal("event")}}},
                        }
                    )
                ],
            )
        )
        acknowledge(
            self.function.role or self.function,
            "AwsSolutions-IAM5[Resource::*]",
            "dynamodb:ListStreams (the stream event source's read grant) supports no resource-level "
            "permissions; the stream's own actions are on its ARN.",
        )

    def grant_write(self, grantee: iam.IGrantable) -> None:
        """What ``DynamoDbOutbox.transact_write`` does on this table: read the aggregate's
        counter, update it and put the event (``TransactWriteItems`` is authorized per item)."""
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=[
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:ConditionCheckItem",
            ],
            resource_arns=[self.table.table_arn],
        )

    def add_alarms(self, topic: sns.ITopic) -> dict[str, cw.Alarm]:
        """Discarded batches (their events were not published), and a consumer falling behind."""
        specs = {
            "StreamFailuresVisible": (
                self.failures.metric_approximate_number_of_messages_visible(
                    period=Duration.minutes(5), statistic="Maximum"
                ),
                1,
                "DynamoDB outbox stream batches were discarded (retries or record age spent): "
                "their events were not published; see docs/dynamodb.md",
            ),
            "StreamIteratorAge": (
                cw.Metric(
                    namespace="AWS/Lambda",
                    metric_name="IteratorAge",
                    dimensions_map={"FunctionName": self.function.function_name},
                    period=Duration.minutes(5),
                    statistic="Maximum",
                ),
                240_000,  # ms, below the SQS dedup window, like OldestPendingAgeSeconds
                "The DynamoDB outbox stream consumer is more than 4 minutes behind the stream.",
            ),
        }
        self.alarms: dict[str, cw.Alarm] = {}
        for name, (metric, threshold, description) in specs.items():
            alarm = cw.Alarm(
                self,
                name,
                metric=metric,
                threshold=threshold,
                evaluation_periods=1,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                alarm_description=description,
            )
            alarm.add_alarm_action(cw_actions.SnsAction(topic))
            self.alarms[name] = alarm
        return self.alarms
