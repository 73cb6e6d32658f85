"""moto drops a message sent while two threads delete others, and revives one of the deleted
(see saga_outbox.local._moto_fixes). SQS does neither; the chaos harness once reported such
drops as lost events."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from saga_outbox.local import _moto_fixes

pytestmark = pytest.mark.integration


@pytest.fixture
def unfixed() -> Iterator[None]:
    """moto's own Queue methods, for the length of one test."""
    from moto.sqs.models import Queue

    saved = {n: Queue.__dict__[n] for n in ("delete_message", "add_message")}
    for name, method in saved.items():
        setattr(Queue, name, getattr(method, "__wrapped__", method))
    try:
        yield
    finally:
        for name, method in saved.items():
            setattr(Queue, name, method)


def _deletes_and_a_send_interleaved() -> list[str]:
    """Delete "a"; while moto rebuilds the queue for it, another thread deletes "b" and a third
    sends "racer" (as the threaded moto server does for two dispatcher pollers and a relay).
    Returns the bodies left in the queue."""
    from moto.sqs.models import Message

    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="race.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        for body in ("a", "b", "c"):
            sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId=body, MessageDeduplicationId=body)
        handles = {
            m["Body"]: m["ReceiptHandle"]
            for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)[
                "Messages"
            ]
        }
        main = threading.get_ident()
        others = [
            threading.Thread(target=lambda: sqs.delete_message(QueueUrl=url, ReceiptHandle=handles["b"])),
            threading.Thread(
                target=lambda: sqs.send_message(
                    QueueUrl=url, MessageBody="racer", MessageGroupId="r", MessageDeduplicationId="racer"
                )
            ),
        ]
        original = Message.had_receipt_handle
        calls = [0]

        def walk(self: Any, receipt_handle: str) -> bool:
            if threading.get_ident() == main:
                calls[0] += 1
                if calls[0] == 2:  # "a" found; the rebuild of the list has begun
                    for other in others:
                        other.start()
                        other.join(0.5)  # unfixed: each completes now, in the middle of it
            return original(self, receipt_handle)

        Message.had_receipt_handle = walk  # type: ignore[method-assign]
        try:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=handles["a"])
        finally:
            Message.had_receipt_handle = original  # type: ignore[method-assign]
        for other in others:
            other.join(5)
        left: list[str] = []
        while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
            left += [m["Body"] for m in batch]
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
            )
        return sorted(left)


def test_unfixed_moto_loses_a_sent_message_and_revives_a_deleted_one(aws_env, unfixed):
    assert _deletes_and_a_send_interleaved() == ["b", "c"], "moto is fixed upstream: drop the fix"


def test_with_the_fix_an_accepted_message_stays_and_a_deleted_one_goes(aws_env):
    _moto_fixes.apply()
    assert _deletes_and_a_send_interleaved() == ["c", "racer"]
