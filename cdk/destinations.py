"""The app's other destinations (``SagaApp.destination``): an SNS FIFO topic, an EventBridge bus
or a Kinesis stream per declared destination, created here or taken from the user, and the
least-privilege grants the relay needs to publish to them (docs/destinations.md)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_sns as sns
from constructs import Construct

from saga_outbox.cdk.security import EncryptionKey

__all__ = ["DESTINATIONS_ENV", "Destinations"]

#: the relay's environment variable: {name: {"kind": ..., "target": ARN or name}}
DESTINATIONS_ENV = "OUTBOX_DESTINATIONS"


class Destinations(Construct):
    """One resource per declared destination: a KMS-encrypted, TLS-only FIFO topic without
    content-based dedup (the relay sets MessageDeduplicationId); an event bus; an on-demand
    stream encrypted with the AWS-managed Kinesis key. ``existing`` maps a destination name to the user's
    own ``sns.ITopic`` / ``events.IEventBus`` / ``kinesis.IStream``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        keys: EncryptionKey,
        declared: Sequence[Any],
        existing: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        existing = dict(existing or {})
        unknown = sorted(set(existing) - {d.name for d in declared})
        if unknown:
            raise ValueError(
                f"destination_resources names {unknown}, which the app does not declare "
                "(app.destination(name, kind=...))"
            )
        self._key = keys.key
        self.topics: dict[str, sns.ITopic] = {}
        self.buses: dict[str, events.IEventBus] = {}
        self.streams: dict[str, kinesis.IStream] = {}
        for d in declared:
            given = existing.get(d.name)
            if d.kind == "sns":
                # jsii interfaces cannot be isinstance-checked: look for what we use
                if given is not None and not hasattr(given, "topic_arn"):
                    raise TypeError(f"destination {d.name!r} is SNS: give an sns.ITopic, got {given!r}")
                self.topics[d.name] = given or sns.Topic(
                    self,
                    f"{_pascal(d.name)}Topic",
                    fifo=True,
                    content_based_deduplication=False,
                    master_key=keys.key,
                    enforce_ssl=True,
                )
            elif d.kind == "eventbridge":
                if given is not None and not hasattr(given, "event_bus_arn"):
                    raise TypeError(
                        f"destination {d.name!r} is EventBridge: give an IEventBus, got {given!r}"
                    )
                self.buses[d.name] = given or events.EventBus(self, f"{_pascal(d.name)}Bus")
            elif d.kind == "kinesis":
                if given is not None and not hasattr(given, "stream_arn"):
                    raise TypeError(
                        f"destination {d.name!r} is Kinesis: give a kinesis.IStream, got {given!r}"
                    )
                self.streams[d.name] = given or kinesis.Stream(
                    self,
                    f"{_pascal(d.name)}Stream",
                    stream_mode=kinesis.StreamMode.ON_DEMAND,
                    # the aws/kinesis key (cdk-nag KDS3): SSE without a key policy to maintain
                    # or a KMS grant for the relay
                    encryption=kinesis.StreamEncryption.MANAGED,
                )
            else:
                raise ValueError(
                    f"destination {d.name!r} of kind {d.kind!r}: the construct creates SNS, EventBridge "
                    "and Kinesis destinations; the SQS queue is the construct's queue="
                )

    @property
    def environment(self) -> dict[str, str]:
        """``OUTBOX_DESTINATIONS`` for the relay: which publisher each destination gets."""
        if not (self.topics or self.buses or self.streams):
            return {}
        spec = {
            **{n: {"kind": "sns", "target": t.topic_arn} for n, t in self.topics.items()},
            **{n: {"kind": "eventbridge", "target": b.event_bus_name} for n, b in self.buses.items()},
            **{n: {"kind": "kinesis", "target": s.stream_name} for n, s in self.streams.items()},
        }
        return {DESTINATIONS_ENV: json.dumps(spec, sort_keys=True)}

    def grant_publish(self, grantee: iam.IGrantable) -> None:
        """Exactly the actions the publishers call (the batch call and the start-up probe),
        on exactly these resources; KMS only for the key the topics use."""
        if self.topics:
            iam.Grant.add_to_principal(
                grantee=grantee,
                # PublishBatch is authorized as sns:Publish
                actions=["sns:Publish", "sns:GetTopicAttributes"],
                resource_arns=[t.topic_arn for t in self.topics.values()],
            )
        if self.buses:
            iam.Grant.add_to_principal(
                grantee=grantee,
                actions=["events:PutEvents", "events:DescribeEventBus"],
                resource_arns=[b.event_bus_arn for b in self.buses.values()],
            )
        if self.streams:
            iam.Grant.add_to_principal(
                grantee=grantee,
                actions=["kinesis:PutRecords", "kinesis:DescribeStreamSummary"],
                resource_arns=[s.stream_arn for s in self.streams.values()],
            )
        if self.topics:
            iam.Grant.add_to_principal(
                grantee=grantee,
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resource_arns=[self._key.key_arn],
            )


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("_", "-").split("-"))
