"""A relay per destination: the rows of each destination claimed, published and marked on
their own (docs/destinations.md).

Each destination gets its own :class:`~outbox_relay.relay.Relay` (its own claim, send backoff,
sender pool and pipelines) over the same engine, so a destination that is down, throttled or
slow backs off alone: the others keep publishing, and nothing they published is sent again
when the failing one catches up.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa

from .db import connect_engine
from .exceptions import ConfigurationError
from .metrics import MetricsSink
from .options import DrainResult, RelayOptions
from .publisher import Publisher
from .relay import Relay
from .supervisor import RelayThread, run_in_threads

__all__ = ["RoutedRelay", "publishers_from_spec"]


def publishers_from_spec(spec: str | Mapping[str, Mapping[str, str]], **client: Any) -> dict[str, Publisher]:
    """Publishers from ``{name: {"kind": "sns"|"eventbridge"|"kinesis", "target": ARN or name}}``
    (JSON text or a mapping): what the CDK construct puts in ``OUTBOX_DESTINATIONS``."""
    import json

    from .eventbridge import EventBridgePublisher
    from .kinesis import KinesisPublisher
    from .sns import SnsFifoPublisher

    try:
        entries = json.loads(spec) if isinstance(spec, str) else dict(spec)
        items = [(str(n), str(e["kind"]), str(e["target"])) for n, e in entries.items()]
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ConfigurationError(
            f"destinations spec {str(spec)[:200]!r} is not {{name: {{kind, target}}}}: {exc}"
        ) from exc
    out: dict[str, Publisher] = {}
    for name, kind, target in items:
        if kind == "sns":
            out[name] = SnsFifoPublisher(topic_arn=target, **client)
        elif kind == "eventbridge":
            out[name] = EventBridgePublisher(event_bus=target, **client)
        elif kind == "kinesis":
            out[name] = KinesisPublisher(stream_name=target, **client)
        else:
            raise ConfigurationError(
                f"destination {name!r}: kind {kind!r} is not sns, eventbridge or kinesis"
            )
    return out


class RoutedRelay:
    """Runs one :class:`Relay` per entry of ``publishers`` (destination name → publisher).

    ``options`` is the template of every destination's options (its ``destination`` is set
    per relay); ``per_destination`` overrides fields for one destination, e.g.
    ``{"stream": {"batch_size": 10}}``. ``engine`` is yours (never disposed) or a URL (ours)."""

    def __init__(
        self,
        *,
        engine: sa.Engine | str,
        publishers: Mapping[str, Publisher],
        options: RelayOptions | None = None,
        per_destination: Mapping[str, Mapping[str, Any]] | None = None,
        metrics: MetricsSink | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(publishers, Mapping) or not publishers:
            raise ConfigurationError(
                f"RoutedRelay needs publishers (destination name -> Publisher), got {publishers!r}"
            )
        overrides = dict(per_destination or {})
        unknown = sorted(set(overrides) - set(publishers))
        if unknown:
            raise ConfigurationError(f"per_destination names {unknown}, which have no publisher")
        self.options = options or RelayOptions()
        self.engine, self._owns_engine = connect_engine(engine)
        self.relays: dict[str, Relay] = {}
        for name, publisher in publishers.items():
            opts = dataclasses.replace(self.options, destination=name, **dict(overrides.get(name, {})))
            self.relays[name] = Relay(
                engine=self.engine, publisher=publisher, options=opts, metrics=metrics, clock=clock
            )

    def check(self) -> None:
        for relay in self.relays.values():
            relay.check()

    def close(self) -> None:
        for relay in self.relays.values():
            relay.close()
        if self._owns_engine:
            self.engine.dispose()

    def __enter__(self) -> RoutedRelay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wake(self, *, everyone: bool = False) -> None:
        for relay in self.relays.values():
            relay.wake(everyone=everyone)

    @property
    def alive_pipelines(self) -> int:
        """The fewest serving pipelines of any destination (what a health check compares)."""
        return min(relay.alive_pipelines for relay in self.relays.values())

    def run_once(self) -> dict[str, int]:
        """One pass per destination, one after the other; rows published per destination."""
        return {name: relay.run_once() for name, relay in self.relays.items()}

    def drain(self, *, max_seconds: float, idle_exit: bool = True) -> dict[str, DrainResult]:
        """Every destination drained at once, each for at most ``max_seconds``."""
        results: dict[str, DrainResult] = {}
        names = list(self.relays)
        lock = threading.Lock()
        todo = iter(names)

        def work() -> None:
            while True:
                with lock:
                    name = next(todo, None)
                if name is None:
                    return
                results[name] = self.relays[name].drain(max_seconds=max_seconds, idle_exit=idle_exit)

        run_in_threads(work, len(names))
        return {name: results[name] for name in names}

    def run_forever(self, stop: threading.Event) -> None:
        """Run every destination's relay until ``stop`` is set."""
        relays = list(self.relays.values())
        todo = iter(relays)
        lock = threading.Lock()

        def work() -> None:
            with lock:
                relay = next(todo)
            relay.run_forever(stop)

        run_in_threads(work, len(relays))

    def run_process(self) -> None:
        """Run in the foreground until SIGTERM/SIGINT, then finish in-flight work and exit."""
        import signal

        stop = threading.Event()

        def _stop(signum: int, _frame: Any) -> None:
            stop.set()
            self.wake(everyone=True)

        old = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.check()
            self.run_forever(stop)
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            self.close()

    def start_in_thread(self) -> RelayThread:
        self.check()
        return RelayThread(self)  # type: ignore[arg-type]  # the same lifecycle surface
