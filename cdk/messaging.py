"""SQS FIFO queue (the relay's target, the dispatcher's source) and its FIFO dead-letter queue,
or the user's own FIFO queue (its DLQ is then whatever the user configured)."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from saga_outbox.cdk.security import EncryptionKey

__all__ = ["Messaging"]


class Messaging(Construct):
    """KMS-encrypted, TLS-only FIFO queues.

    Content-based deduplication is off: the relay sets ``MessageDeduplicationId`` from the event id.
    High-throughput mode (dedup per message group, throughput per group) is a context switch.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        keys: EncryptionKey,
        max_receive_count: int,
        high_throughput: bool,
        visibility_timeout: Duration,
        queue: sqs.IQueue | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        if queue is not None:
            if not queue.fifo:
                raise ValueError(
                    f"queue {queue.node.path} is not a FIFO queue: the relay needs per-aggregate order "
                    "and MessageDeduplicationId (SQS FIFO)"
                )
            self.queue: sqs.IQueue = queue
            dlq = getattr(queue, "dead_letter_queue", None)
            #: None when the given queue's DLQ is unknown here (imported queue): no DLQ alarm then
            self.dead_letter_queue: sqs.IQueue | None = dlq.queue if dlq is not None else None
            self._key: kms.IKey | None = queue.encryption_master_key
            return
        throughput: dict[str, object] = {}
        if high_throughput:
            throughput = {
                "deduplication_scope": sqs.DeduplicationScope.MESSAGE_GROUP,
                "fifo_throughput_limit": sqs.FifoThroughputLimit.PER_MESSAGE_GROUP_ID,
            }
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            fifo=True,
            content_based_deduplication=False,
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=keys.key,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        self.queue = sqs.Queue(
            self,
            "EventsQueue",
            fifo=True,
            content_based_deduplication=False,
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=keys.key,
            data_key_reuse=Duration.hours(1),
            enforce_ssl=True,
            visibility_timeout=visibility_timeout,
            retention_period=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letter_queue, max_receive_count=max_receive_count
            ),
            **throughput,  # type: ignore[arg-type]
        )
        self._key = keys.key

    def grant_send(self, grantee: iam.IGrantable) -> None:
        """SendMessage/SendMessageBatch on the queue and the two KMS actions a producer needs
        (explicit, instead of ``grant_send_messages``'s ``kms:GenerateDataKey*``/``ReEncrypt*``)."""
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
            resource_arns=[self.queue.queue_arn],
        )
        if self._key is not None:
            iam.Grant.add_to_principal(
                grantee=grantee,
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resource_arns=[self._key.key_arn],
            )
