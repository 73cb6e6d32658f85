"""``chaos --destination``: the second destination's relay, read-back and check, run on their
own against real PostgreSQL and moto (a whole chaos run is in test_chaos_small)."""

from __future__ import annotations

import time

import boto3
import pytest

from outbox_relay import enqueue
from outbox_relay.destinations import SQS_DESTINATION
from saga_outbox.local.chaos.destination import INVARIANTS, SecondDestination

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("kind", ["sns", "eventbridge", "kinesis"])
def test_the_second_destination_is_published_read_back_and_checked(engine, outbox, sqs, kind):
    second = SecondDestination(
        kind,
        clients=lambda service: boto3.client(service, region_name="us-east-1"),
        engine=engine,
        schema=outbox,
        run_id="t",
        entry_failure_rate=0.2,
        throttle_rate=0.1,
        seed=3,
    )
    second.start()
    try:
        for n in range(40):
            with engine.begin() as conn:
                enqueue(
                    conn,
                    aggregate_type="probe",
                    aggregate_key=str(n % 4),
                    event_type="Probe",
                    payload={"seq": n},
                    schema=outbox,
                    destinations=[SQS_DESTINATION, second.destination],
                )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with engine.connect() as c:
                pending = c.exec_driver_sql(
                    f'SELECT count(*) FROM "{outbox}".outbox'
                    " WHERE state = 'pending' AND destination <> 'sqs'"
                ).scalar()
            if not pending:
                break
            time.sleep(0.2)
    finally:
        second.stop()
    report = second.check()
    assert report["invariants"] == INVARIANTS[kind]
    assert (report["rows"], report["lost"], report["dead_rows"]) == (40, 0, 0)
    assert report["injected"]["entry_failures"] > 0  # the faults did happen, and were absorbed
    if INVARIANTS[kind]["order"] == "checked":
        assert report["order_violations"] == 0
    assert report["ok"]
    # the check can fail: an event that never arrived is lost
    second.received = [e for e in second.received if e["payload"]["seq"] != 7]
    broken = second.check()
    assert (broken["lost"], broken["lost_still_pending"], broken["ok"]) == (1, 0, False)
