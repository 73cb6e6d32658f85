"""A small SQS / Step Functions look-alike on 127.0.0.1 for the benchmarks (JSON protocol).

botocore (1.34+) speaks the JSON protocol to both services: ``POST /`` with the header
``X-Amz-Target: AmazonSQS.SendMessageBatch`` (or ``AWSStepFunctions.StartExecution``) and an
``application/x-amz-json-1.0`` body. This server answers the operations the relay and the
dispatcher use, after a fixed delay (the service's latency), and models the quotas with token
buckets:

- SQS FIFO *normal* mode: ``normal_calls_per_s`` (300) SendMessageBatch calls per second;
- SQS FIFO *high-throughput* mode: each message group ≤ ``group_calls_per_s`` (300) calls per
  second, plus a regional ``ht_msgs_per_s`` cap (70,000 messages per second);
- Step Functions Standard ``StartExecution``: bucket 1,300, refill 300 per second.

Past a quota it answers ``ThrottlingException`` (HTTP 400), as the services do. Control
operations (``X-Amz-Target: Bench.Configure|Stats|Acks|Reset``) let a benchmark in another
process configure it and read what it accepted, including the ack time of every event id.

Run it in-process with :func:`serve_in_thread` (tests) or as a separate process with
:class:`FakeAwsProcess` (benchmarks: its CPU then does not compete with the relay's GIL).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeAwsProcess", "FakeAwsServer", "ServerConfig", "TokenBucket", "serve_in_thread"]

QUEUE_URL_PATH = "/123456789012/bench-events.fifo"


class TokenBucket:
    """Thread-safe token bucket: ``capacity`` tokens, refilled at ``rate`` per second."""

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self._tokens = capacity
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def take(self, n: float = 1.0) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= n:
                self._tokens -= n
                return True
            return False


@dataclass
class ServerConfig:
    #: seconds before each answer (the service's latency)
    delay: float = 0.020
    #: "normal" or "high" (SQS FIFO high-throughput mode)
    sqs_mode: str = "normal"
    normal_calls_per_s: float = 300.0
    #: burst allowance of the normal-mode bucket (calls): small, so a 12-second window cannot
    #: beat the sustained quota on an initially full bucket
    normal_burst: float = 30.0
    group_calls_per_s: float = 300.0
    #: burst allowance of each group's bucket (calls; default: one second's worth)
    group_burst: float | None = None
    ht_msgs_per_s: float = 70_000.0
    sfn_bucket: float = 1300.0
    sfn_refill_per_s: float = 300.0
    #: record the ack time of every event id (costs a json.loads per message)
    record_acks: bool = False


class _State:
    def __init__(self, config: ServerConfig) -> None:
        self.lock = threading.Lock()
        self.configure(config)

    def configure(self, config: ServerConfig) -> None:
        with self.lock:
            self.config = config
            self.sqs_bucket = TokenBucket(config.normal_calls_per_s, config.normal_burst)
            self.ht_bucket = TokenBucket(config.ht_msgs_per_s, config.ht_msgs_per_s)
            self.group_buckets: dict[str, TokenBucket] = {}
            self.sfn_bucket = TokenBucket(config.sfn_refill_per_s, config.sfn_bucket)
            self.counters: dict[str, int] = {}
            self.acks: dict[str, float] = {}
            self.executions: dict[str, str] = {}

    def count(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.counters[name] = self.counters.get(name, 0) + n

    def group_bucket(self, group: str) -> TokenBucket:
        with self.lock:
            bucket = self.group_buckets.get(group)
            if bucket is None:
                rate = self.config.group_calls_per_s
                burst = self.config.group_burst if self.config.group_burst is not None else rate
                bucket = self.group_buckets[group] = TokenBucket(rate, burst)
            return bucket


class _Throttled(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: botocore pools its connections
    disable_nagle_algorithm = True  # headers and body are separate writes
    server: FakeAwsServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return None

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        target = self.headers.get("X-Amz-Target", "")
        state = self.server.state
        try:
            body = json.loads(raw or b"{}")
            service, _, op = target.partition(".")
            if service == "Bench":
                self._reply(200, self._control(op, body))
                return
            delay = state.config.delay
            try:
                result = self._operation(service, op, body)
            except _Throttled:
                state.count(f"{op}.throttled")
                if delay:
                    time.sleep(delay)
                self._error(400, "ThrottlingException", "Rate exceeded", query_code="ThrottlingException")
                return
            if delay:
                time.sleep(delay)
            if op == "SendMessageBatch" and state.config.record_acks:
                now = time.time()
                ids = [json.loads(e["MessageBody"])["event_id"] for e in body["Entries"]]
                with state.lock:
                    for eid in ids:
                        state.acks[eid] = now
            self._reply(200, result)
        except KeyError as exc:
            self._error(400, "MissingParameter", f"missing {exc}")
        except _Unknown as exc:
            self._error(400, "UnknownOperationException", str(exc))

    def _operation(self, service: str, op: str, body: dict[str, Any]) -> dict[str, Any]:
        state = self.server.state
        if service == "AmazonSQS" and op == "GetQueueAttributes":
            state.count(op)
            # as SQS reports the two modes: the relay paces itself to a perQueue quota
            limit = "perQueue" if state.config.sqs_mode == "normal" else "perMessageGroupId"
            return {
                "Attributes": {
                    "FifoQueue": "true",
                    "ContentBasedDeduplication": "false",
                    "FifoThroughputLimit": limit,
                }
            }
        if service == "AmazonSQS" and op == "SendMessageBatch":
            entries = body["Entries"]
            self._sqs_quota(entries)
            state.count(op)
            state.count("messages", len(entries))
            return {
                "Successful": [
                    {
                        "Id": e["Id"],
                        "MessageId": str(uuid.uuid4()),
                        "MD5OfMessageBody": hashlib.md5(
                            e["MessageBody"].encode(), usedforsecurity=False
                        ).hexdigest(),
                        "SequenceNumber": str(time.time_ns()),
                    }
                    for e in entries
                ],
                "Failed": [],
            }
        if service == "AWSStepFunctions" and op == "StartExecution":
            if not state.sfn_bucket.take():
                raise _Throttled
            state.count(op)
            machine = body["stateMachineArn"]
            name = body.get("name") or str(uuid.uuid4())
            arn = machine.replace(":stateMachine:", ":execution:", 1) + f":{name}"
            with state.lock:
                state.executions.setdefault(arn, body.get("input", "{}"))
            return {"executionArn": arn, "startDate": time.time()}
        raise _Unknown(f"{service}.{op} is not implemented by the bench endpoint")

    def _sqs_quota(self, entries: list[dict[str, Any]]) -> None:
        state = self.server.state
        if state.config.sqs_mode == "normal":
            if not state.sqs_bucket.take():
                raise _Throttled
            return
        if not state.ht_bucket.take(len(entries)):
            raise _Throttled
        # high-throughput: every group in the call spends one of its own call tokens
        for group in {e["MessageGroupId"] for e in entries}:
            if not state.group_bucket(group).take():
                raise _Throttled

    def _control(self, op: str, body: dict[str, Any]) -> dict[str, Any]:
        state = self.server.state
        if op == "Configure":
            state.configure(ServerConfig(**body))
            return {"ok": True}
        if op == "Stats":
            with state.lock:
                return {"counters": dict(state.counters), "executions": len(state.executions)}
        if op == "Acks":
            with state.lock:
                return {"acks": dict(state.acks)}
        raise _Unknown(f"Bench.{op}")

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, code: str, message: str, *, query_code: str | None = None) -> None:
        data = json.dumps({"__type": f"com.amazonaws.sqs#{code}", "message": message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if query_code:  # SQS (AWS-query compatible) carries the legacy code in this header
            self.send_header("x-amzn-query-error", f"{query_code};Sender")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Unknown(Exception):
    pass


class FakeAwsServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, config: ServerConfig | None = None, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.state = _State(config or ServerConfig())

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def queue_url(self) -> str:
        return self.endpoint_url + QUEUE_URL_PATH


def serve_in_thread(config: ServerConfig | None = None) -> FakeAwsServer:
    """Start a server on a free port in a daemon thread; call ``shutdown()`` when done."""
    server = FakeAwsServer(config)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


class FakeAwsProcess:
    """The same server in a child process (so it does not share the benchmark's GIL)."""

    def __init__(self, config: ServerConfig | None = None) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.fake_aws"], stdout=subprocess.PIPE, text=True
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line.startswith("PORT "):
            self._proc.kill()
            raise RuntimeError(f"fake AWS endpoint did not start: {line!r}")
        self.endpoint_url = f"http://127.0.0.1:{int(line.split()[1])}"
        self.queue_url = self.endpoint_url + QUEUE_URL_PATH
        self.configure(config or ServerConfig())

    def _control(self, op: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        req = urllib.request.Request(
            self.endpoint_url + "/",
            data=json.dumps(body or {}).encode(),
            headers={"X-Amz-Target": f"Bench.{op}", "Content-Type": "application/x-amz-json-1.0"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            result: dict[str, Any] = json.loads(resp.read())
        return result

    def configure(self, config: ServerConfig) -> None:
        self._control("Configure", asdict(config))

    def stats(self) -> dict[str, Any]:
        return self._control("Stats")

    def acks(self) -> dict[str, float]:
        acks: dict[str, float] = self._control("Acks")["acks"]
        return acks

    def cpu_seconds(self) -> float:
        """User + system CPU the endpoint process has used so far (/proc/<pid>/stat), so a
        benchmark can show the endpoint is not what limits its figure."""
        with open(f"/proc/{self._proc.pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def __enter__(self) -> FakeAwsProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main() -> None:
    server = FakeAwsServer()
    print(f"PORT {server.server_address[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    main()
