"""Routing per destination, declared on the app and on outbox_relay.Routes: validation with
errors that name the value, limits per destination, and the app's check."""

from __future__ import annotations

import pytest

from outbox_relay import ConfigurationError, Destination, InvalidDestinationError, Routes
from outbox_relay.destinations import (
    EVENTBRIDGE_MAX_MESSAGE_BYTES,
    SNS_MAX_MESSAGE_BYTES,
    SQS_DESTINATION,
    check_destinations,
)
from outbox_relay.envelope import SQS_MAX_MESSAGE_BYTES
from outbox_relay.eventbridge import EventBridgePublisher
from outbox_relay.kinesis import KinesisPublisher
from outbox_relay.sns import SnsFifoPublisher
from saga_outbox import AppError
from tests.apps import room_app


def test_routes_resolve_event_types_and_default_to_sqs():
    bus = Destination(name="bus", kind="eventbridge")
    routes = Routes(destinations=[SQS_DESTINATION, bus], routes={"A": ["sqs", "bus", "bus"]})
    assert routes.for_event("A") == (SQS_DESTINATION, bus)
    assert routes.for_event("other") == (SQS_DESTINATION,)
    assert routes.get("bus") is bus


@pytest.mark.parametrize(
    ("build", "named"),
    [
        (lambda: Destination(name="Bad Name", kind="sqs"), "'Bad Name'"),
        (lambda: Destination(name="bus", kind="kafka"), "'kafka'"),
        (lambda: Routes(routes={"A": ["nowhere"]}), "'nowhere'"),
        (lambda: Routes(routes={"A": "sqs"}), "'sqs'"),
        (lambda: Routes(routes={"A": []}), "event type 'A' routes to no destination"),
        (
            lambda: Routes(
                destinations=[Destination(name="x", kind="sns"), Destination(name="x", kind="kinesis")]
            ),
            "'x'",
        ),
    ],
)
def test_bad_routing_is_refused_with_the_value_named(build, named):
    with pytest.raises(ConfigurationError, match=named):
        build()


@pytest.mark.parametrize(
    ("value", "named"),
    [("sqs", "'sqs'"), (["sqs"], "'sqs'"), ([], "empty"), (SQS_DESTINATION, "Destination")],
)
def test_enqueue_destinations_must_be_destination_objects(value, named):
    with pytest.raises(InvalidDestinationError, match=named):
        check_destinations(value, event_id="e")


def test_limits_per_kind():
    assert Destination(name="q", kind="sqs").max_message_bytes == SQS_MAX_MESSAGE_BYTES
    assert Destination(name="t", kind="sns").max_message_bytes == SNS_MAX_MESSAGE_BYTES == 262_144
    # EventBridge: 256 KiB per entry and per request, less what Source and Time add to each entry
    assert 262_144 - 1_000 < EVENTBRIDGE_MAX_MESSAGE_BYTES < 262_144
    assert KinesisPublisher(stream_name="s").max_rows_per_group == 1


@pytest.mark.parametrize(
    ("build", "named"),
    [
        (lambda: SnsFifoPublisher(topic_arn="events.fifo"), "'events.fifo'"),
        (lambda: SnsFifoPublisher(topic_arn="arn:aws:sns:us-east-1:1:events"), "not a FIFO topic"),
        (lambda: EventBridgePublisher(event_bus="b", source="aws.orders"), "'aws.orders'"),
        (lambda: EventBridgePublisher(event_bus=""), "''"),
        (lambda: KinesisPublisher(), "exactly one"),
        (lambda: KinesisPublisher(stream_name="s", stream_arn="arn:x"), "exactly one"),
    ],
)
def test_publishers_refuse_bad_targets_before_any_call(build, named):
    with pytest.raises(ConfigurationError, match=named):
        build()


def test_the_app_declares_destinations_and_deliveries():
    app = room_app()
    app.destination("audit", kind="eventbridge")
    app.deliver("RoomRequested", to=["sqs", "audit"])
    assert [d.name for d in app.destinations_for("RoomRequested")] == ["sqs", "audit"]
    assert [d.name for d in app.destinations_for("Other")] == ["sqs"]
    app.check()


def test_app_routing_errors_name_the_value():
    app = room_app()
    with pytest.raises(AppError, match="'nowhere'"):
        app.deliver("RoomRequested", to=["nowhere"])
    with pytest.raises(AppError, match="'Bad'"):
        app.destination("Bad", kind="sns")
    app.destination("audit", kind="sns")
    with pytest.raises(AppError, match="'audit'"):
        app.destination("audit", kind="kinesis")
    app.deliver("RoomRequested", to=["audit"])
    with pytest.raises(AppError, match=r"\['RoomRequested'\] start workflows but are not delivered to 'sqs'"):
        app.check()


def test_relay_cli_flags_pick_one_destination_publisher():
    from outbox_relay.cli import OutboxError, _destination_publisher, _relay_args, build_parser

    parse = build_parser().parse_args
    args = parse(["relay", "--destination", "bus", "--event-bus", "app-bus", "--event-source", "shop"])
    publisher, target = _destination_publisher(args)
    assert isinstance(publisher, EventBridgePublisher) and (publisher.source, target) == ("shop", "app-bus")
    args = parse(["relay", "--destination", "stream", "--kinesis-stream", "events"])
    assert isinstance(_destination_publisher(args)[0], KinesisPublisher)
    # a relay process started by --processes gets the same destination and target
    again = parse(["relay", *_relay_args(args, "")])
    assert (again.destination, again.kinesis_stream, again.queue_url) == ("stream", "events", None)
    assert _destination_publisher(parse(["relay", "--queue-url", "https://q"])) is None
    with pytest.raises(OutboxError, match="--event-bus and --queue-url"):
        _destination_publisher(parse(["relay", "--event-bus", "b", "--queue-url", "https://q"]))
