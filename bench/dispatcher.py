"""(7) Dispatcher: SQS batches → Step Functions StartExecution calls per second.

Drives the real Lambda handler ``saga_outbox.lambdas.handlers.dispatcher.make_handler`` (Powertools
``SqsFifoPartialProcessor``, our ``Dispatcher``) with an injected boto3 ``stepfunctions``
client (default botocore configuration, as the Lambda runtime builds it) pointed at
:mod:`bench.fake_aws`: 20 ms per StartExecution, Standard quota bucket 1,300 refilled at
300/s, ``ThrottlingException`` beyond. Sixteen threads stand for 16 concurrent Lambda
invocations, each handling batches of 10 ``OrderPlaced`` records (routed to the Standard
``OrderSaga`` and the Express ``OrderProjection``: two StartExecution calls per record).
Measured twice: with the quota, and with the quota lifted (the dispatcher's own ceiling).
Powertools' EMF lines (flushed every 100 metrics even when disabled) are discarded.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import time
import uuid
import warnings
from datetime import UTC, datetime
from typing import Any

from outbox_relay import OutboxEnvelope

from .common import Ctx
from .fake_aws import FakeAwsProcess, ServerConfig

INVOCATIONS = 16
ARNS = {
    name: f"arn:aws:states:us-east-1:123456789012:stateMachine:{name}"
    for name in ("OrderSaga", "OrderProjection")
}


def _record(i: int) -> dict[str, Any]:
    key = f"disp-{i:08d}"
    env = OutboxEnvelope(
        event_id=uuid.uuid4(),
        event_type="OrderPlaced",
        aggregate_type="order",
        aggregate_key=key,
        occurred_at=datetime.now(UTC),
        payload={"order_id": key, "amount_cents": 1234, "currency": "EUR"},
    )
    return {
        "messageId": str(uuid.uuid4()),
        "receiptHandle": "rh",
        "body": env.to_json(),
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1700000000000",
            "SequenceNumber": str(i),
            "MessageGroupId": env.group_id,
            "SenderId": "bench",
            "MessageDeduplicationId": env.deduplication_id,
            "ApproximateFirstReceiveTimestamp": "1700000000000",
        },
        "messageAttributes": {},
        "md5OfBody": "x",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bench-events.fifo",
        "awsRegion": "us-east-1",
    }


def _handler(endpoint_url: str) -> Any:
    import boto3

    from examples.orders.app import app
    from saga_outbox.lambdas.config import RuntimeConfig
    from saga_outbox.lambdas.handlers.dispatcher import make_handler
    from saga_outbox.lambdas.runtime import Runtime

    sfn = boto3.client(
        "stepfunctions",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )
    return make_handler(Runtime(RuntimeConfig(state_machine_arns=ARNS), app=app, sfn_client=sfn))


def measure(server: FakeAwsProcess, config: ServerConfig, seconds: float) -> dict[str, Any]:
    from saga_outbox.local import LocalLambdaContext

    server.configure(config)
    handler = _handler(server.endpoint_url)
    counts = {"records": 0, "failed_records": 0, "batches": 0}
    lock = threading.Lock()
    seq = iter(range(10**9))
    deadline = time.perf_counter() + seconds

    def invoke_loop() -> None:
        while time.perf_counter() < deadline:
            with lock:
                batch = {"Records": [_record(next(seq)) for _ in range(10)]}
            response = handler(batch, LocalLambdaContext(function_name="dispatcher"))
            with lock:
                counts["batches"] += 1
                counts["records"] += 10
                counts["failed_records"] += len(response.get("batchItemFailures", []))

    start = time.perf_counter()
    threads = [threading.Thread(target=invoke_loop) for _ in range(INVOCATIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.perf_counter() - start
    c = server.stats()["counters"]
    ok = c.get("StartExecution", 0)
    return {
        "seconds": round(took, 2),
        "start_execution_ok": ok,
        "start_execution_throttled": c.get("StartExecution.throttled", 0),
        "start_execution_per_s": round(ok / took, 1),
        "throttled_per_s": round(c.get("StartExecution.throttled", 0) / took, 1),
        "records_per_s": round((counts["records"] - counts["failed_records"]) / took, 1),
        **counts,
    }


def run(ctx: Ctx) -> dict[str, Any]:
    seconds = ctx.seconds(10.0, 1.5)
    saved = {k: os.environ.get(k) for k in ("POWERTOOLS_METRICS_DISABLED", "POWERTOOLS_LOG_LEVEL")}
    os.environ.update({"POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "ERROR"})
    try:
        with FakeAwsProcess() as server, contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Powertools: "No application metrics to publish"
            quota = measure(server, ServerConfig(), seconds)
            free = measure(server, ServerConfig(sfn_bucket=1e9, sfn_refill_per_s=1e9), seconds)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    ctx.log(
        f"  dispatcher: {quota['start_execution_per_s']:,.0f} StartExecution/s with the quota "
        f"({quota['throttled_per_s']:,.0f}/s throttled), {free['start_execution_per_s']:,.0f}/s without"
    )
    return {
        "driver": "saga_outbox.lambdas.handlers.dispatcher.make_handler",
        "invocations": INVOCATIONS,
        "quota": {"bucket": 1300, "refill_per_s": 300},
        "with_quota": quota,
        "without_quota": free,
        "start_execution_per_s": quota["start_execution_per_s"],
        "unthrottled_per_s": free["start_execution_per_s"],
    }
