"""The chaos harness: one process hosting PostgreSQL (embedded unless a URL is given), moto
(in-process for Step Functions, Lambda, DynamoDB, and as a ThreadedMotoServer endpoint that the
relay subprocesses use; both share moto's module-global backends), the dispatcher's event
sources and the Lambda steps; N relay subprocesses it kills and restarts.

It runs any :class:`~saga_outbox.SagaApp`. Plain probe events (an event type no app routes)
test the outbox path; sagas are started by the app's :class:`.scenario.ChaosScenario` when it
supplies one, else by :class:`.scenario.GenericSagas` (see :mod:`.scenario`).
"""

from __future__ import annotations

import contextlib
import logging
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, TextIO

import sqlalchemy as sa

from saga_outbox._app import SagaApp
from saga_outbox._console import Console, progress_on
from saga_outbox._discovery import load_app
from saga_outbox._errors import AppError

from .checker import ChaosReport, check_run
from .ddb_source import DynamoDbProbeWriter, StreamFaults
from .disruptions import Disruptions
from .faults import ChaosEventSource, FaultySteps, StepFaultRates, recording_dispatcher
from .history import History, SqsDedupModel
from .options import ChaosOptions
from .reconcile import DroppedDispatches, reconcile_pass
from .relays import Periodic, Relays
from .scenario import ChaosScenario, GenericSagas, ScenarioFactory, check_scenario, load_scenario

__all__ = ["PLAIN_AGGREGATE", "PLAIN_EVENT_TYPE", "ChaosOptions", "run_chaos"]

log = logging.getLogger("saga_outbox.local.chaos")

#: Probe events: routed to no workflow (refused if the app routes it), so the dispatcher only
#: acknowledges them; each carries a per-aggregate ``seq`` for the order check.
PLAIN_EVENT_TYPE = "SagaOutboxChaosProbe"
PLAIN_AGGREGATE = "saga_outbox_chaos"


def _scenario_for(
    app: SagaApp, scenario: str | ScenarioFactory | None, run_id: str
) -> tuple[ChaosScenario | None, str | None]:
    """This run's scenario (None: the app supplied none) and how to name it in the report."""
    if scenario is None:
        return None, None
    if isinstance(scenario, str):
        return load_scenario(scenario, app, run_id=run_id), scenario.strip()
    name = f"{getattr(scenario, '__module__', '?')}:{getattr(scenario, '__qualname__', repr(scenario))}"
    return check_scenario(scenario(app, run_id=run_id), name), name


def _compensable(app: SagaApp) -> Any:
    """(workflow, step) -> whether the step has a compensation (the lasting step faults hit
    only those: a step that cannot be undone has nowhere to go after an unknown outcome)."""
    undoable = {(wf.name, s.name) for wf in app.workflows for s in wf.steps if s.compensation}
    return lambda workflow, step: (workflow, step) in undoable


def _running(runtime: Any, workflows: Any) -> int:
    """Executions still RUNNING (filtered in Step Functions: the finished ones are not listed)."""
    sfn, n = runtime.clients["stepfunctions"], 0
    for name in workflows:
        for page in sfn.get_paginator("list_executions").paginate(
            stateMachineArn=runtime.state_machine_arns[name], statusFilter="RUNNING"
        ):
            n += len(page["executions"])
    return n


def run_chaos(
    opts: ChaosOptions,
    *,
    app: SagaApp | str,
    scenario: str | ScenarioFactory | None = None,
    progress: TextIO | Console | None = sys.stderr,
) -> ChaosReport:
    """Run ``app`` under every fault and return the checker's report. ``scenario`` (``"M:S"``
    or the factory itself) supplies the domain; without it the domain checks are skipped.
    ``progress``: where the progress goes (a bar on a terminal, a line every 10 s elsewhere)."""
    from moto.server import ThreadedMotoServer

    from outbox_relay import deduplication_id, enqueue, outbox_status

    from ..lambda_bridge import bridge_lambda
    from ..runtime import LocalOptions, LocalRuntime

    started = time.monotonic()
    # fresh names per run: a shared database (tests, --database-url) never mixes two runs
    run_id = uuid.uuid4().hex[:8]
    given = load_app(app)
    chosen, scenario_name = _scenario_for(given, scenario, run_id)
    app = chosen.app if chosen is not None else given
    if app.workflows_for(PLAIN_EVENT_TYPE):
        raise AppError(f"app {app.name!r} routes {PLAIN_EVENT_TYPE!r}, the chaos probe event type")
    starter: Any = chosen if chosen is not None else GenericSagas(app)
    if opts.sagas and chosen is None and not starter.routes:
        raise AppError(f"app {app.name!r} routes no event type to a Standard workflow: pass --sagas 0")
    saga_workflows = {chosen.saga} if chosen is not None else set(starter.sagas)
    saga_types = {r.event_type for r in app.routes if r.workflow in saga_workflows}
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    # moto logs every failed execution (CompensationFailed is an expected outcome here)
    logging.getLogger("moto.stepfunctions").setLevel(logging.CRITICAL)
    history = History()
    rng = random.Random(opts.seed)
    log_dir = Path(opts.log_dir or tempfile.mkdtemp(prefix="saga-outbox-chaos-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    stream_faults = StreamFaults(opts, history) if opts.source == "dynamodb" else None
    local = LocalOptions(
        database_url=opts.database_url,
        outbox_schema=f"chaos_outbox_{run_id}",
        visibility_timeout_seconds=2,
        max_receive_count=1_000,
        duplicate_rate=opts.duplicate_delivery_rate,
        seed=opts.seed,
        event_source_threads=0,
        **(stream_faults.local_options() if stream_faults else {}),
    )
    runtime = LocalRuntime(app, local).start(run_workers=False)
    from .._moto_fixes import apply as fix_moto

    fix_moto()
    ddb_writer: DynamoDbProbeWriter | None = None
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    dedup = SqsDedupModel(history, queue_name=local.queue_name)
    relays: Relays | None = None
    second: Any = None  # --destination: a SecondDestination
    disruptions: Disruptions | None = None
    sources: list[ChaosEventSource] = []
    chaos_threads: list[Periodic] = []
    bar = progress_on(progress, total=opts.events, description="events", started=started)
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
                exhausted=opts.step_exhausted_rate,
                idempotency_down=opts.step_idempotency_down_rate,
                duplicate=opts.step_duplicate_rate,
            ),
            seed=opts.seed,
            history=history,
            compensable=_compensable(runtime.app),
            dynamodb_client=runtime.clients["dynamodb"],
            skip_own_compensation=opts.steps_mode == "skip_own_compensation",
        )
        for fn in runtime.app.functions():
            bridge_lambda(fn, steps)
        handler: Any = runtime.dispatcher_handler
        if opts.lost_dispatches:
            handler = DroppedDispatches(
                opts.lost_dispatches,
                standard_arns=[runtime.state_machine_arns[w] for w in saga_workflows],
                sfn_client=runtime.clients["stepfunctions"],
                history=history,
            ).wrap(handler)
        dispatcher = recording_dispatcher(handler, history, plain_type=PLAIN_EVENT_TYPE)
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
        relays = Relays(
            opts=opts,
            history=history,
            database_url=runtime.database_url,
            queue_url=runtime.queue_url,
            endpoint_url=endpoint,
            schema=schema,
            log_dir=log_dir,
            rng=random.Random(opts.seed + 1),
            fault_file=log_dir / "sqs-fault",
        )
        disruptions = Disruptions(
            opts, history=history, relays=relays, engine=engine, schema=schema, run_id=run_id, log_dir=log_dir
        )
        disruptions.start()
        relays.start()
        probe_destinations = None
        if opts.destination is not None:
            import boto3

            from outbox_relay.destinations import SQS_DESTINATION

            from .destination import SecondDestination

            second = SecondDestination(
                opts.destination,
                clients=lambda service: boto3.client(service, region_name=local.region),
                engine=engine,
                schema=schema,
                run_id=run_id,
                entry_failure_rate=opts.entry_failure_rate,
                throttle_rate=opts.throttle_rate,
                seed=opts.seed + 5,
            )
            second.start()
            probe_destinations = [SQS_DESTINATION, second.destination]
        if stream_faults is not None:
            ddb_writer = DynamoDbProbeWriter(
                runtime, stream_faults, event_type=PLAIN_EVENT_TYPE, aggregate_type=PLAIN_AGGREGATE
            )
            ddb_writer.source = runtime.start_stream_source()

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
        # late re-sends are modelled on PostgreSQL rows (the DynamoDB outbox keeps no send state)
        late_budget = round(opts.events * opts.late_resend_rate) if ddb_writer is None else 0

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
                    "AND event_type = %(t)s AND destination = 'sqs' ORDER BY random() LIMIT %(n)s) "
                    "RETURNING event_id::text",
                    {"t": PLAIN_EVENT_TYPE, "n": take},
                ).all()
            ids = [r[0] for r in rows]
            dedup.backdate(deduplication_id(e) for e in ids)
            history.late_resend_requests.update(ids)
            late_budget -= len(ids)

        if opts.db_kill_interval_seconds > 0:
            chaos_threads.append(Periodic(opts.db_kill_interval_seconds, drop_connections, "chaos-pg-kill"))
        if late_budget:
            chaos_threads.append(Periodic(1.0, late_resends, "chaos-late-resend"))
        for t in chaos_threads:
            t.start()

        # -- produce: plain events in batches, sagas interleaved; kills spread over progress --
        n_aggr = opts.aggregates or max(1, opts.events // 100)
        seqs = [0] * n_aggr
        total_units = opts.events + opts.sagas
        kill_points = [round(total_units * (i + 1) / (opts.kills + 1)) for i in range(opts.kills)]
        kill_modes = ["after_send" if i % 2 == 0 else "external" for i in range(opts.kills)]
        rng.shuffle(kill_modes)
        saga_rng = random.Random(opts.seed + 3)
        done_units, events_done, sagas_done, next_kill = 0, 0, 0, 0
        deadline = started + opts.timeout_seconds
        while done_units < total_units and time.monotonic() < deadline:
            disruptions.at(done_units / total_units)
            while (
                next_kill < len(kill_points)
                and done_units >= kill_points[next_kill]
                and relays.kill_one(kill_modes[next_kill])
            ):
                next_kill += 1
            # sagas proportionally to events
            want_sagas = opts.sagas * (events_done + 1) // max(1, opts.events) if opts.events else opts.sagas
            if sagas_done < min(opts.sagas, want_sagas):
                # in flight: started, not yet received by the dispatcher, or still running
                received = sum(history.received_by_type.get(t, 0) for t in saga_types)
                in_flight = sagas_done - received + _running(runtime, saga_workflows)
                if in_flight < opts.max_sagas_in_flight:
                    with engine.begin() as c:
                        starter.start(c, rng=saga_rng, outbox_schema=schema)
                    sagas_done += 1
                    done_units += 1
                    history.sagas_started = sagas_done
                    continue
                if events_done >= opts.events:
                    time.sleep(0.05)
                    continue
            if events_done < opts.events:
                if events_done - history.plain_received >= opts.max_backlog:
                    time.sleep(0.02)
                    continue
                batch = min(100, opts.events - events_done)
                if ddb_writer is not None:
                    ddb_writer.write(rng, seqs, batch)
                else:
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
                                destinations=probe_destinations,
                            )
                events_done += batch
                done_units += batch
                history.events_enqueued = events_done
            bar.update(
                completed=events_done,
                detail=f"(consumed {history.plain_received}), sagas {sagas_done}/{opts.sagas}, "
                f"kills {len(history.kills)}",
            )
        kill_deadline = time.monotonic() + 60
        while next_kill < len(kill_points) and time.monotonic() < kill_deadline:
            # an armed (after_send) worker dies at its next send: keep work flowing meanwhile
            if relays.kill_one("external"):
                next_kill += 1
            else:
                time.sleep(0.2)

        # -- settle: nothing pending, queue empty, no execution running (three times in a row) --
        bar.log("produced; waiting for the system to settle")
        every_workflow = [wf.name for wf in runtime.app.workflows]

        def settle(until: float) -> None:
            stable = 0
            while time.monotonic() < until:
                status = outbox_status(engine, schema=schema)
                running = _running(runtime, every_workflow)
                depth = runtime.queue_depth()
                quiet = status.pending == 0 and depth == 0 and not running
                if runtime.stream_source is not None and runtime.stream_source.pending():
                    quiet = False
                if late_budget > 0:
                    quiet = False  # late re-sends still to come
                stable = stable + 1 if quiet else 0
                if stable >= 3:
                    return
                bar.note(f"settling: pending {status.pending}, queue {depth}, running executions {running}")
                time.sleep(1.0)

        settle(min(deadline, time.monotonic()) + opts.settle_timeout_seconds)
        # -- reconcile: one pass, as the scheduled function would, while relays and dispatchers
        # still run (a repaired saga's own events must be published and consumed too) --
        bar.log("reconciling")
        reconciled = reconcile_pass(
            runtime.app,
            engine=engine,
            sfn_client=runtime.clients["stepfunctions"],
            state_machine_arns=dict(runtime.state_machine_arns),
            outbox_schema=schema,
        )
        if reconciled["lost_dispatches_repaired"]:
            settle(time.monotonic() + opts.settle_timeout_seconds)
        for t in chaos_threads:
            t.stop()
        chaos_threads.clear()
        disruptions.stop()
        relays.stop()
        if second is not None:
            second.stop()
        for s in sources:
            s.stop()
        sources.clear()
        runtime.stop_workers()  # the stream source, when there is one
        bar.log("checking")
        domain = (
            chosen.audit(
                engine,
                sfn_client=runtime.clients["stepfunctions"],
                state_machine_arns=dict(runtime.state_machine_arns),
                outbox_schema=schema,
            )
            if chosen is not None
            else None
        )
        report = check_run(
            history,
            engine,
            app=runtime.app,
            sfn_client=runtime.clients["stepfunctions"],
            state_machine_arns=runtime.state_machine_arns,
            outbox_schema=schema,
            plain_event_type=PLAIN_EVENT_TYPE,
            domain=domain,
            extra_rows=ddb_writer.rows() if ddb_writer is not None else None,
            reconciler=reconciled,
        )
        if second is not None:
            report.destination = second.check()
        report.scenario = scenario_name
        report.duration_seconds = round(time.monotonic() - started, 1)
        report.faults["late_resends_requested"] = len(history.late_resend_requests)
        report.faults.update(disruptions.figures())
        if ddb_writer is not None:
            report.faults.update(ddb_writer.figures())
        report.faults = dict(sorted(report.faults.items()))
        return report
    finally:
        bar.close()
        for t in chaos_threads:
            t.stop()
        if disruptions is not None:
            disruptions.stop()
        if relays is not None:
            relays.stop()
        if second is not None:
            second.stop()
        for s in sources:
            s.stop()
        dedup.uninstall()
        with contextlib.suppress(Exception):
            server.stop()
        runtime.stop()
