"""Destinations and routing: where an event goes, and the limits each service puts on it.

An event routed to n destinations is written as n outbox rows, one per destination, in the
caller's transaction (docs/destinations.md): each destination is then claimed, published,
retried and marked on its own, so a slow or failing one never blocks or re-sends the others.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .envelope import SQS_MAX_MESSAGE_BYTES
from .exceptions import ConfigurationError, InvalidEventError
from .schema import DEFAULT_DESTINATION

__all__ = [
    "DEFAULT_ROUTES",
    "KINDS",
    "SQS_DESTINATION",
    "Destination",
    "DestinationKind",
    "InvalidDestinationError",
    "Routes",
    "check_destinations",
]

DestinationKind = Literal["sqs", "sns", "eventbridge", "kinesis"]
KINDS: tuple[DestinationKind, ...] = ("sqs", "sns", "eventbridge", "kinesis")

#: SNS: 256 KiB per message (body + attributes) and per PublishBatch request.
SNS_MAX_MESSAGE_BYTES = 262_144
#: EventBridge: 256 KiB per entry (Detail + DetailType + Source + Resources + 14 bytes for
#: Time) and per PutEvents request. Sizes are measured as the SQS message (body + the
#: event_type attribute, see envelope.message_size); an entry's Source (≤ 64 characters here)
#: and Time add at most 62 bytes more, so ten entries at the limit still fit one request.
EVENTBRIDGE_MAX_SOURCE_CHARS = 64
EVENTBRIDGE_MAX_MESSAGE_BYTES = 262_144 - 10 * (EVENTBRIDGE_MAX_SOURCE_CHARS + 14 - 16)
#: Kinesis: a record's data plus its partition key ≤ 1 MiB (the stream default), a PutRecords
#: request ≤ 5 MiB and 500 records. The SQS measure counts the event_type attribute, at least
#: 16 bytes, which Kinesis does not send: the partition key (the group id, ≤ 128) is covered
#: by keeping 128 bytes back.
KINESIS_MAX_MESSAGE_BYTES = 1_048_576 - 128
KINESIS_MAX_REQUEST_BYTES = 5 * 1_048_576

_LIMITS: dict[str, int] = {
    "sqs": SQS_MAX_MESSAGE_BYTES,
    "sns": SNS_MAX_MESSAGE_BYTES,
    "eventbridge": EVENTBRIDGE_MAX_MESSAGE_BYTES,
    "kinesis": KINESIS_MAX_MESSAGE_BYTES,
}
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


class InvalidDestinationError(InvalidEventError):
    """``enqueue`` was given destinations that are not :class:`Destination` objects, or none."""


@dataclass(frozen=True, kw_only=True)
class Destination:
    """A named place events are published to, and the kind of service it is.

    The name is what the outbox row stores and what a relay is given a publisher for
    (``RoutedRelay(publishers={name: publisher})``); the kind sets the size limit enqueue
    checks before any SQL."""

    name: str
    kind: DestinationKind

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigurationError(
                f"destination name {self.name!r} is invalid: 1-63 lower-case letters, digits, '_' "
                "or '-', a letter first"
            )
        if self.kind not in KINDS:
            raise ConfigurationError(
                f"destination {self.name!r}: kind {self.kind!r} is not one of {', '.join(KINDS)}"
            )

    @property
    def max_message_bytes(self) -> int:
        """The largest event (measured as envelope.message_size) this destination accepts."""
        return _LIMITS[self.kind]


#: every event goes here unless routed elsewhere: the SQS FIFO queue of the dispatcher
SQS_DESTINATION = Destination(name=DEFAULT_DESTINATION, kind="sqs")


@dataclass(frozen=True, kw_only=True)
class Routes:
    """Which destinations events of each type go to.

    ``routes`` maps an event type to destination names; every other event type goes to
    ``default`` (the SQS queue unless told otherwise). Every name must be one of
    ``destinations``, checked on construction."""

    destinations: Sequence[Destination] = (SQS_DESTINATION,)
    routes: Mapping[str, Sequence[str]] = field(default_factory=dict)
    default: Sequence[str] = (DEFAULT_DESTINATION,)
    _by_name: dict[str, Destination] = field(init=False, repr=False, compare=False)
    _resolved: dict[str, tuple[Destination, ...]] = field(init=False, repr=False, compare=False)
    _default: tuple[Destination, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name: dict[str, Destination] = {}
        for d in self.destinations:
            if not isinstance(d, Destination):
                raise ConfigurationError(f"Routes.destinations holds {d!r}, not a Destination")
            if d.name in by_name and by_name[d.name] != d:
                raise ConfigurationError(f"two destinations are named {d.name!r}: {by_name[d.name]} and {d}")
            by_name[d.name] = d
        object.__setattr__(self, "destinations", tuple(by_name.values()))
        object.__setattr__(self, "_by_name", by_name)
        resolved: dict[str, tuple[Destination, ...]] = {}
        for event_type, names in self.routes.items():
            if not isinstance(event_type, str) or not event_type:
                raise ConfigurationError(f"Routes.routes: event type {event_type!r} is not a non-empty text")
            resolved[event_type] = self._resolve(names, what=f"event type {event_type!r}")
        object.__setattr__(self, "routes", {k: tuple(d.name for d in v) for k, v in resolved.items()})
        object.__setattr__(self, "_resolved", resolved)
        object.__setattr__(self, "_default", self._resolve(self.default, what="the default route"))
        object.__setattr__(self, "default", tuple(d.name for d in self._default))

    def _resolve(self, names: Iterable[str], *, what: str) -> tuple[Destination, ...]:
        if isinstance(names, str):
            raise ConfigurationError(f"{what} routes to {names!r}: give a list of destination names")
        out: list[Destination] = []
        for name in names:
            dest = self._by_name.get(name)
            if dest is None:
                raise ConfigurationError(
                    f"{what} routes to unknown destination {name!r}; known: {sorted(self._by_name)}"
                )
            if dest not in out:
                out.append(dest)
        if not out:
            raise ConfigurationError(f"{what} routes to no destination: an event must go somewhere")
        return tuple(out)

    def for_event(self, event_type: str) -> tuple[Destination, ...]:
        """The destinations an event of ``event_type`` is written for, in route order."""
        return self._resolved.get(event_type, self._default)

    def get(self, name: str) -> Destination:
        try:
            return self._by_name[name]
        except KeyError:
            raise ConfigurationError(
                f"no destination named {name!r}; known: {sorted(self._by_name)}"
            ) from None


DEFAULT_ROUTES = Routes()


def check_destinations(
    destinations: Sequence[Destination] | None, *, event_id: str
) -> tuple[Destination, ...]:
    """The destinations enqueue writes rows for (default: the SQS queue), refused before SQL."""
    if destinations is None:
        return (SQS_DESTINATION,)
    if isinstance(destinations, Destination | str) or not isinstance(destinations, Sequence):
        raise InvalidDestinationError(
            f"event {event_id}: destinations must be a list of Destination, got {destinations!r}"
        )
    out: list[Destination] = []
    for d in destinations:
        if not isinstance(d, Destination):
            raise InvalidDestinationError(
                f"event {event_id}: destinations holds {d!r}, not a Destination "
                "(use Routes.for_event(event_type) or Destination(name=..., kind=...))"
            )
        if any(o.name == d.name and o != d for o in out):
            raise InvalidDestinationError(f"event {event_id}: two destinations are named {d.name!r}")
        if d not in out:
            out.append(d)
    if not out:
        raise InvalidDestinationError(f"event {event_id}: destinations is empty: an event must go somewhere")
    return tuple(out)
