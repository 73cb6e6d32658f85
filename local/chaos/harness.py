"""The chaos harness: one process hosting PostgreSQL (embedded unless a URL is given), moto
(in-process for Step Functions, Lambda, DynamoDB, and as a ThreadedMotoServer endpoint that the
relay subprocesses use; both share moto's module-global backends), the dispatcher's event
sources and the Lambda steps; N relay subprocesses it kills and restarts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import sqlalchemy as sa

from examples.orders.demo import simulated_failures

from .checker import ChaosReport, check_run
from .faults import ChaosEventSource, FaultySteps, StepFaultRates, recording_dispatcher
from .history import History, SqsDedupModel

__all__ = ["PLAIN_EVENT_TYPE", "ChaosOptions", "run_chaos"]

log = logging.getLogger("saga_outbox.local.chaos")

PLAIN_EVENT_TYPE = "AccountCredited"
PLAIN_AGGREGATE = "account"


@dataclass(frozen=True, kw_only=True)
class ChaosOptions:
    events: int = 100_000
    sagas: int = 1_000
    seed: int = 1
    relays: int = 3
    kills: int = 20
    entry_failure_rate: float = 0.05
    throttle_rate: float = 0.05
    step_failure_rate: float = 0.05
    step_lost_response_rate: float = 0.03
    step_timeout_rate: float = 0.02
    step_duplicate_rate: float = 0.05
    duplicate_delivery_rate: float = 0.05
    dispatcher_crash_rate: float = 0.02
    late_resend_rate: float = 0.002
    db_kill_interval_seconds: float = 3.0
    #: business failures of the sagas (simulate flags): payment declined, shipment failed, and
    #: of the shipment failures the share whose refund fails too (CompensationFailed)
    fail_payment: float = 0.1
    fail_shipping: float = 0.05
    fail_refund: float = 0.3
    aggregates: int | None = None  #: default: events // 100 (at least 1)
    lease_seconds: float = 3.0
    event_sources: int = 2
    max_backlog: int = 300  #: plain events enqueued but not yet consumed
    max_sagas_in_flight: int = 40
    database_url: str | None = None
    relay_mode: str = "correct"  #: or a broken relay (checker tests): mark_before_send, drop_failed
    crash_after_mark_rate: float = 0.0
    timeout_seconds: float = 3_600.0
    settle_timeout_seconds: float = 300.0
    log_dir: str | None = None

    def __post_init__(self) -> None:
        if self.events < 0 or self.sagas < 0 or self.events + self.sagas == 0:
            raise ValueError("--events and --sagas must be >= 0, and not both 0")
        if self.relays < 1:
            raise ValueError("--relays must be at least 1")
        if self.kills < 0:
            raise ValueError("--kills must be >= 0")
        for name in (
            "entry_failure_rate",
            "throttle_rate",
            "step_failure_rate",
            "step_lost_response_rate",
            "step_timeout_rate",
            "step_duplicate_rate",
            "duplicate_delivery_rate",
            "dispatcher_crash_rate",
            "late_resend_rate",
            "fail_payment",
            "fail_shipping",
            "fail_refund",
            "crash_after_mark_rate",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"--{name.replace('_', '-')} must be between 0 and 1, got {value}")
        if self.step_failure_rate + self.step_lost_response_rate + self.step_timeout_rate > 1.0:
            raise ValueError("step failure + lost-response + timeout rates must add up to at most 1")


@dataclass
class _Worker:
    index: int
    generation: int
    proc: subprocess.Popen[bytes]
    log: Any
    how: str | None = None  # the kill we aimed at it
    started: float = field(default_factory=time.monotonic)


@dataclass
class _Relays:
    """Starts, kills and restarts the relay subprocesses; records every exit."""

    opts: ChaosOptions
    history: History
    database_url: str
    queue_url: str
    endpoint_url: str
    schema: str
    log_dir: Path
    rng: random.Random
    workers: list[_Worker] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name="chaos-relays", daemon=True)
        self._generation = 0

    def _spawn(self, index: int) -> _Worker:
        self._generation += 1
        name = f"chaos-relay-{index}-{self._generation}"
        cmd = [
            sys.executable,
            "-m",
            "saga_outbox.local.chaos.relay_worker",
            "--database-url",
            self.database_url,
            "--queue-url",
            self.queue_url,
            "--endpoint-url",
            self.endpoint_url,
            "--schema",
            self.schema,
            "--name",
            name,
            "--seed",
            str(self.opts.seed * 1000 + self._generation),
            "--entry-failure-rate",
            str(self.opts.entry_failure_rate),
            "--throttle-rate",
            str(self.opts.throttle_rate),
            "--lease-seconds",
            str(self.opts.lease_seconds),
            "--mode",
            self.opts.relay_mode,
            "--crash-after-mark-rate",
            str(self.opts.crash_after_mark_rate),
        ]
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "local"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        logf = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 (closed on exit)
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env)
        return _Worker(index, self._generation, proc, logf)

    def start(self) -> None:
        with self._lock:
            self.workers = [self._spawn(i) for i in range(self.opts.relays)]
        self._thread.start()

    def _supervise(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                for i, w in enumerate(self.workers):
                    code = w.proc.poll()
                    if code is None:
                        continue
                    w.log.close()
                    if code == -signal.SIGKILL:
                        self.history.record_kill(
                            signal="SIGKILL", how=w.how or "self", relay=w.index, generation=w.generation
                        )
                    self.history.relay_exits.append({"relay": w.index, "code": code})
                    self.workers[i] = self._spawn(w.index)
            self._stop.wait(0.1)

    def kill_one(self, how: str) -> bool:
        """``external``: SIGKILL now (claim, send or mark, wherever it is); ``after_send``: arm the
        worker to SIGKILL itself after its next successful SendMessageBatch, before the mark."""
        with self._lock:
            now = time.monotonic()  # a worker still importing has no SIGUSR1 handler yet
            alive = [
                w for w in self.workers if w.proc.poll() is None and w.how is None and now - w.started > 3
            ]
            if not alive:
                return False
            w = self.rng.choice(alive)
            w.how = how
            with contextlib.suppress(ProcessLookupError):
                w.proc.send_signal(signal.SIGKILL if how == "external" else signal.SIGUSR1)
            return True

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        with self._lock:
            for w in self.workers:
                if w.proc.poll() is None:
                    w.proc.terminate()
            for w in self.workers:
                try:
                    w.proc.wait(15)
                except subprocess.TimeoutExpired:
                    w.proc.kill()
                    w.proc.wait(5)
                if w.proc.returncode == -signal.SIGKILL and w.how:
                    self.history.record_kill(
                        signal="SIGKILL", how=w.how, relay=w.index, generation=w.generation
                    )
                w.log.close()


class _Periodic(threading.Thread):
    def __init__(self, interval: float, fn: Any, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._interval, self._fn, self._halt = interval, fn, threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self._interval):
            try:
                self._fn()
            except Exception as exc:  # chaos must not stop the run
                log.warning("%s failed: %s", self.name, exc)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


def run_chaos(opts: ChaosOptions, *, progress: TextIO | None = sys.stderr) -> ChaosReport:
    """Run the whole scenario and return the checker's report."""
    from moto.server import ThreadedMotoServer

    from examples.orders.commands import place_order
    from outbox_relay import deduplication_id, enqueue, outbox_status

    from ..lambda_bridge import bridge_lambda
    from ..runtime import LocalOptions, LocalRuntime

    started = time.monotonic()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    # moto logs every failed execution (CompensationFailed is an expected outcome here)
    logging.getLogger("moto.stepfunctions").setLevel(logging.CRITICAL)
    history = History()
    rng = random.Random(opts.seed)
    log_dir = Path(opts.log_dir or tempfile.mkdtemp(prefix="saga-outbox-chaos-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    # fresh schemas per run: a shared database (tests, --database-url) never mixes two runs
    suffix = uuid.uuid4().hex[:8]
    orders_schema = f"chaos_orders_{suffix}"
    from examples.orders.app import create_app

    local = LocalOptions(
        database_url=opts.database_url,
        outbox_schema=f"chaos_outbox_{suffix}",
        visibility_timeout_seconds=2,
        max_receive_count=1_000,
        duplicate_rate=opts.duplicate_delivery_rate,
        seed=opts.seed,
        event_source_threads=0,
    )
    runtime = LocalRuntime(create_app(schema=orders_schema), local).start(run_workers=False)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    dedup = SqsDedupModel(history, queue_name=local.queue_name)
    relays: _Relays | None = None
    sources: list[ChaosEventSource] = []
    chaos_threads: list[_Periodic] = []
    say = (lambda msg: print(msg, file=progress, flush=True)) if progress else (lambda msg: None)
    try:
        assert runtime.engine is not None and runtime.database_url is not None
        engine: sa.Engine = runtime.engine
        schema = local.outbox_schema
        server.start()
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        dedup.install()
        steps = FaultySteps(
            runtime.steps_handler,
            rates=StepFaultRates(
                failure=opts.step_failure_rate,
                lost_response=opts.step_lost_response_rate,
                timeout=opts.step_timeout_rate,
                duplicate=opts.step_duplicate_rate,
            ),
            seed=opts.seed,
            history=history,
        )
        for fn in runtime.app.functions():
            bridge_lambda(fn, steps)
        dispatcher = recording_dispatcher(runtime.dispatcher_handler, history, plain_type=PLAIN_EVENT_TYPE)
        for i in range(opts.event_sources):
            source = ChaosEventSource(
                crash_rate=opts.dispatcher_crash_rate,
                history=history,
                sqs_client=runtime.clients["sqs"],
                queue_url=runtime.queue_url,
                handler=dispatcher,
                region=local.region,
                duplicate_rate=opts.duplicate_delivery_rate,
                seed=opts.seed * 7 + i,
            )
            source.start()
            sources.append(source)
        relays = _Relays(
            opts=opts,
            history=history,
            database_url=runtime.database_url,
            queue_url=runtime.queue_url,
            endpoint_url=endpoint,
            schema=schema,
            log_dir=log_dir,
            rng=random.Random(opts.seed + 1),
        )
        relays.start()

        def drop_connections() -> None:
            with engine.connect() as c:
                n = len(
                    c.exec_driver_sql(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name LIKE 'chaos-relay%%'"
                    ).all()
                )
                c.commit()
            history.count("pg_connections_terminated", n)

        late_rng = random.Random(opts.seed + 2)
        late_budget = round(opts.events * opts.late_resend_rate)

        def late_resends() -> None:
            """A relay that re-sends long after its first send (a mark lost, an outage): the
            row is pending again with first_sent_at 6 minutes back, and the dedup model has
            forgotten its id (the window passed). Consumers must absorb the real duplicate."""
            nonlocal late_budget
            if late_budget <= 0:
                return
            take = min(late_budget, max(1, late_rng.randint(1, 5)))
            with engine.begin() as c:
                rows = c.exec_driver_sql(
                    f"UPDATE \"{schema}\".outbox SET state = 'pending', published_at = NULL, "
                    "first_sent_at = now() - interval '6 minutes', available_at = now() "
                    f"WHERE id IN (SELECT id FROM \"{schema}\".outbox WHERE state = 'published' "
                    "AND event_type = %(t)s ORDER BY random() LIMIT %(n)s) RETURNING event_id::text",
                    {"t": PLAIN_EVENT_TYPE, "n": take},
                ).all()
            ids = [r[0] for r in rows]
            dedup.backdate(deduplication_id(e) for e in ids)
            history.late_resend_requests.update(ids)
            late_budget -= len(ids)

        if opts.db_kill_interval_seconds > 0:
            chaos_threads.append(_Periodic(opts.db_kill_interval_seconds, drop_connections, "chaos-pg-kill"))
        if late_budget:
            chaos_threads.append(_Periodic(1.0, late_resends, "chaos-late-resend"))
        for t in chaos_threads:
            t.start()

        # -- produce: plain events in batches, orders interleaved; kills spread over progress --
        n_aggr = opts.aggregates or max(1, opts.events // 100)
        seqs = [0] * n_aggr
        total_units = opts.events + opts.sagas
        kill_points = [round(total_units * (i + 1) / (opts.kills + 1)) for i in range(opts.kills)]
        kill_modes = ["after_send" if i % 2 == 0 else "external" for i in range(opts.kills)]
        rng.shuffle(kill_modes)
        order_rng = random.Random(opts.seed + 3)
        refund_fail_orders = 0
        done_units, events_done, orders_done, next_kill = 0, 0, 0, 0
        deadline = started + opts.timeout_seconds
        last_report = 0.0
        while done_units < total_units and time.monotonic() < deadline:
            while (
                next_kill < len(kill_points)
                and done_units >= kill_points[next_kill]
                and relays.kill_one(kill_modes[next_kill])
            ):
                next_kill += 1
            # orders proportionally to events
            want_orders = opts.sagas * (events_done + 1) // max(1, opts.events) if opts.events else opts.sagas
            if orders_done < min(opts.sagas, want_orders):
                with engine.connect() as c:
                    in_flight = int(
                        c.exec_driver_sql(
                            f"SELECT count(*) FROM \"{orders_schema}\".orders WHERE status = 'PENDING'"
                        ).scalar_one()
                    )
                if in_flight - refund_fail_orders < opts.max_sagas_in_flight:
                    simulate = simulated_failures(
                        order_rng,
                        fail_payment=opts.fail_payment,
                        fail_shipping=opts.fail_shipping,
                        fail_refund=opts.fail_refund,
                    )
                    refund_fail_orders += int(simulate.get("fail_refund", False))
                    with engine.begin() as c:
                        place_order(
                            c,
                            customer_id=f"customer-{orders_done % 37}",
                            items=[{"sku": f"sku-{order_rng.randrange(20)}", "qty": order_rng.randint(1, 3)}],
                            amount_cents=order_rng.randint(500, 50_000),
                            simulate=simulate or None,
                            outbox_schema=schema,
                            orders_schema=orders_schema,
                        )
                    orders_done += 1
                    done_units += 1
                    history.orders_placed = orders_done
                    continue
                if events_done >= opts.events:
                    time.sleep(0.05)
                    continue
            if events_done < opts.events:
                if events_done - history.plain_received >= opts.max_backlog:
                    time.sleep(0.02)
                    continue
                batch = min(100, opts.events - events_done)
                with engine.begin() as c:
                    for _ in range(batch):
                        a = rng.randrange(n_aggr)
                        seqs[a] += 1
                        enqueue(
                            c,
                            aggregate_type=PLAIN_AGGREGATE,
                            aggregate_key=str(a),
                            event_type=PLAIN_EVENT_TYPE,
                            payload={"account": a, "seq": seqs[a], "amount": 1},
                            schema=schema,
                        )
                events_done += batch
                done_units += batch
                history.events_enqueued = events_done
            now = time.monotonic()
            if progress and now - last_report > 10:
                last_report = now
                say(
                    f"  [{now - started:6.0f}s] events {events_done}/{opts.events} "
                    f"(consumed {history.plain_received}), orders {orders_done}/{opts.sagas}, "
                    f"kills {len(history.kills)}"
                )
        kill_deadline = time.monotonic() + 60
        while next_kill < len(kill_points) and time.monotonic() < kill_deadline:
            # an armed (after_send) worker dies at its next send: keep work flowing meanwhile
            if relays.kill_one("external"):
                next_kill += 1
            else:
                time.sleep(0.2)

        # -- settle: nothing pending, queue empty, no execution running (twice in a row) --
        say(f"  [{time.monotonic() - started:6.0f}s] produced; waiting for the system to settle")
        settle_deadline = min(deadline, time.monotonic()) + opts.settle_timeout_seconds
        stable = 0
        while time.monotonic() < settle_deadline:
            status = outbox_status(engine, schema=schema)
            running = any(
                e["status"] == "RUNNING"
                for wf in ("OrderSaga", "OrderProjection")
                for e in runtime.executions(wf)
            )
            quiet = status.pending == 0 and runtime.queue_depth() == 0 and not running
            if late_budget > 0:
                quiet = False  # late re-sends still to come
            stable = stable + 1 if quiet else 0
            if stable >= 3:
                break
            if progress and time.monotonic() - last_report > 10:
                last_report = time.monotonic()
                say(
                    f"  [{time.monotonic() - started:6.0f}s] settling: pending {status.pending}, "
                    f"queue {runtime.queue_depth()}, running sagas/projections {running}"
                )
            time.sleep(1.0)
        for t in chaos_threads:
            t.stop()
        chaos_threads.clear()
        relays.stop()
        for s in sources:
            s.stop()
        sources.clear()
        say(f"  [{time.monotonic() - started:6.0f}s] checking")
        report = check_run(
            history,
            engine,
            sfn_client=runtime.clients["stepfunctions"],
            state_machine_arns=runtime.state_machine_arns,
            outbox_schema=schema,
            orders_schema=orders_schema,
            plain_event_type=PLAIN_EVENT_TYPE,
            saga=runtime.app.get_workflow("OrderSaga"),
        )
        report.duration_seconds = round(time.monotonic() - started, 1)
        report.faults["late_resends_requested"] = len(history.late_resend_requests)
        return report
    finally:
        for t in chaos_threads:
            t.stop()
        if relays is not None:
            relays.stop()
        for s in sources:
            s.stop()
        dedup.uninstall()
        with contextlib.suppress(Exception):
            server.stop()
        runtime.stop()
