"""One relay process of a chaos run: ``python -m saga_outbox.local.chaos.relay_worker ...``.

A real :class:`outbox_relay.Relay` publishing to the harness's moto server through a
:class:`outbox_relay.testing.FaultySqsClient` (entry failures, throttling). SIGUSR1 arms a
crash: the process SIGKILLs itself right after its next successful SendMessageBatch, before
the mark-published commit. SIGTERM stops it cleanly. ``--mode`` selects deliberately broken
relays, used only to prove the checker catches them:

- ``mark_before_send``: marks rows published, may die (``--crash-after-mark-rate``), then sends;
- ``drop_failed``: treats entries SQS refused (and throttled requests) as published;
- ``charge_request_failures``: spends a row's attempt on request-level failures (an outage,
  expired credentials, throttling), as the relay did before issue 11: an outage kills rows;
- ``hang_on_database_error``: a pipeline that meets a database error (a lock or statement
  timeout, a dropped connection) stops serving for good while the process lives on, as
  relay threads did before issue 11.

``--fault-file`` is the harness's SQS outage switch (:func:`..disruptions.request_fault_from`);
``--pg-options`` are libpq options of the relay's connections (a short lock_timeout or
statement_timeout, so the harness's locks make claims and marks fail with them).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import random
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]

MODES = ("correct", "mark_before_send", "drop_failed", "charge_request_failures", "hang_on_database_error")


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def build_relay(args: argparse.Namespace) -> Any:
    import boto3
    import sqlalchemy as sa
    from botocore.config import Config

    from outbox_relay import Relay, RelayOptions, SqsFifoPublisher
    from outbox_relay.exceptions import DatabaseError
    from outbox_relay.publisher import OutboundMessage
    from outbox_relay.store import Release
    from outbox_relay.testing import FaultySqsClient

    armed = {"crash": False}

    def _arm(_signum: int, _frame: Any) -> None:
        armed["crash"] = True

    signal.signal(signal.SIGUSR1, _arm)

    def after_send(_entries: list[dict[str, Any]]) -> None:
        if armed["crash"]:
            _die()  # sent, not yet marked: the rows are re-sent after the lease

    client = boto3.client(
        "sqs",
        region_name="us-east-1",
        endpoint_url=args.endpoint_url,
        # an attempt (connect + read) fits in half the 3 s chaos lease, so the lease guard is
        # armed: a relay stalled past its lease refuses the attempt instead of sending late
        config=Config(
            retries={"mode": "standard", "total_max_attempts": 2},
            connect_timeout=0.5,
            read_timeout=1.0,
            max_pool_connections=32,
        ),
    )
    request_fault = None
    if args.fault_file:
        from .disruptions import request_fault_from

        request_fault = request_fault_from(args.fault_file, args.endpoint_url)
    faulty = FaultySqsClient(
        client,
        entry_failure_rate=args.entry_failure_rate,
        throttle_rate=args.throttle_rate,
        seed=args.seed,
        after_send=after_send,
        request_fault=request_fault,
    )
    connect_args = {"application_name": args.name}
    if args.pg_options:
        connect_args["options"] = args.pg_options
    engine = sa.create_engine(
        args.database_url, pool_size=8, max_overflow=8, pool_pre_ping=True, connect_args=connect_args
    )
    options = RelayOptions(
        schema=args.schema,
        lease_seconds=args.lease_seconds,
        poll_interval_seconds=0.2,
        claim_size=100,
        concurrency=4,
        # pinned, like the rest: the published chaos figures ran 4 pipelines per process, and
        # the broken relays' checks count on each pipeline's death mattering
        pipelines=4,
        max_attempts=args.max_attempts,
        backoff_base_seconds=0.1,
        backoff_max_seconds=2.0,
        relay_id=args.name,
    )
    rng = random.Random(args.seed)
    schema = args.schema

    class MarkBeforeSendRelay(Relay):
        def _publish(
            self, messages: list[OutboundMessage], deadline: float, attempts: dict[int, int]
        ) -> tuple[list[int], list[Release]]:
            if messages:
                with self.engine.begin() as conn:
                    conn.exec_driver_sql(
                        f"UPDATE \"{schema}\".outbox SET state = 'published', published_at = now() "
                        "WHERE id = ANY(%(ids)s) AND state = 'pending'",
                        {"ids": [m.row_id for m in messages]},
                    )
                if rng.random() < args.crash_after_mark_rate:
                    _die()
            return super()._publish(messages, deadline, attempts)

    class DropFailedRelay(Relay):
        def _publish(
            self, messages: list[OutboundMessage], deadline: float, attempts: dict[int, int]
        ) -> tuple[list[int], list[Release]]:
            published, releases = super()._publish(messages, deadline, attempts)
            return published + [r.row_id for r in releases], []

    class ChargeRequestFailuresRelay(Relay):
        def _publish(
            self, messages: list[OutboundMessage], deadline: float, attempts: dict[int, int]
        ) -> tuple[list[int], list[Release]]:
            published, releases = super()._publish(messages, deadline, attempts)
            return published, [dataclasses.replace(r, spend_attempt=True) for r in releases]

    stopped_by_database_error = threading.Event()

    class HangOnDatabaseErrorRelay(Relay):
        """Stops serving at its first database error while the process looks alive. Every
        pipeline stops, not only the one that met the error: with claims taking turns, faults
        reach the pipelines unevenly, and a relay that kept one of eight would still drain a
        small run and hide the bug from the checker for a reason of timing."""

        def _pass(self) -> Any:
            if stopped_by_database_error.is_set():
                threading.Event().wait()
            try:
                return super()._pass()
            except DatabaseError:
                stopped_by_database_error.set()
                threading.Event().wait()  # this pipeline is gone; the process looks alive
                raise

    cls = {
        "correct": Relay,
        "hang_on_database_error": HangOnDatabaseErrorRelay,
        "mark_before_send": MarkBeforeSendRelay,
        "drop_failed": DropFailedRelay,
        "charge_request_failures": ChargeRequestFailuresRelay,
    }[args.mode]
    publisher = SqsFifoPublisher(queue_url=args.queue_url, sqs_client=faulty)
    return cls(engine=engine, publisher=publisher, options=options)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m saga_outbox.local.chaos.relay_worker")
    p.add_argument("--database-url", required=True)
    p.add_argument("--queue-url", required=True)
    p.add_argument("--endpoint-url", required=True)
    p.add_argument("--schema", default="saga_outbox")
    p.add_argument("--name", default="chaos-relay")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--entry-failure-rate", type=float, default=0.0)
    p.add_argument("--throttle-rate", type=float, default=0.0)
    p.add_argument("--lease-seconds", type=float, default=3.0)
    p.add_argument("--mode", choices=MODES, default="correct")
    p.add_argument("--crash-after-mark-rate", type=float, default=0.0)
    p.add_argument("--max-attempts", type=int, default=8)
    p.add_argument("--fault-file", default=None)
    p.add_argument("--pg-options", default="")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # until build_relay installs the crash trigger
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    relay = build_relay(args)
    relay.run_process()  # until SIGTERM; SIGKILL ends it anywhere
    return 0


if __name__ == "__main__":
    sys.exit(main())
