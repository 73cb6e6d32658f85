"""A ``lambda.waitForTaskToken`` step (a human approval, say): the action gets ``ctx.task_token``,
hands it to whoever decides, and the execution waits until ``SendTaskSuccess`` (the approval's
output becomes the step's result) or ``SendTaskFailure`` (a rejection: the saga compensates)."""

from __future__ import annotations

import json
import time

import pytest

from saga_outbox import BusinessRuleViolation, Integration, SagaApp, Step, StepContext, Workflow
from saga_outbox.local import LocalOptions, LocalRuntime

pytestmark = pytest.mark.integration

TOKENS: dict[str, str] = {}


class ApprovalRejected(BusinessRuleViolation):
    pass


def _app() -> SagaApp:
    app = SagaApp("approvals")
    app.add(
        Workflow(
            name="ExpenseSaga",
            steps=[
                Step(name="Reserve", action="reserve", compensation="release"),
                Step(
                    name="Approve",
                    action="ask_approval",
                    integration=Integration.LAMBDA_WAIT_FOR_TASK_TOKEN,
                    timeout_seconds=60,
                ),
            ],
        )
    )
    app.route("ExpenseFiled", "ExpenseSaga")
    app.action("ExpenseSaga", "reserve")(lambda ctx: {"reserved": True})
    app.action("ExpenseSaga", "release")(lambda ctx: {"released": True})

    @app.action("ExpenseSaga", "ask_approval")
    def ask_approval(ctx: StepContext) -> dict:
        assert ctx.task_token, "a waitForTaskToken step must receive its token"
        TOKENS[ctx.payload["expense"]] = ctx.task_token  # e.g. e-mail an approval link
        return {"asked": True}

    return app


def _wait(runtime: LocalRuntime, expense: str, timeout: float = 60) -> dict:
    sfn = runtime.clients["stepfunctions"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for e in runtime.executions("ExpenseSaga"):
            described = sfn.describe_execution(executionArn=e["executionArn"])
            if json.loads(described["input"])["payload"]["expense"] == expense and e["status"] != "RUNNING":
                return described
        time.sleep(0.2)
    raise AssertionError(f"expense {expense} did not finish")


def _states(runtime: LocalRuntime, arn: str) -> list[str]:
    events = runtime.clients["stepfunctions"].get_execution_history(executionArn=arn)["events"]
    return [e["stateEnteredEventDetails"]["name"] for e in events if e["type"].endswith("StateEntered")]


def _enqueue(runtime: LocalRuntime, expense: str) -> None:
    from outbox_relay import enqueue

    assert runtime.engine is not None
    with runtime.engine.begin() as conn:
        enqueue(
            conn,
            aggregate_type="expense",
            aggregate_key=expense,
            event_type="ExpenseFiled",
            payload={"expense": expense},
            schema=runtime.options.outbox_schema,
        )


def _token(expense: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while expense not in TOKENS:
        assert time.monotonic() < deadline, "the approval step never ran"
        time.sleep(0.1)
    return TOKENS[expense]


def test_task_token_approval_and_rejection(database_url, schema, aws_env) -> None:
    with LocalRuntime(_app(), LocalOptions(database_url=database_url, outbox_schema=schema)) as runtime:
        sfn = runtime.clients["stepfunctions"]
        _enqueue(runtime, "e-1")
        sfn.send_task_success(taskToken=_token("e-1"), output=json.dumps({"approved_by": "alice"}))
        done = _wait(runtime, "e-1")
        assert done["status"] == "SUCCEEDED"
        assert json.loads(done["output"])["results"]["Approve"]["output"] == {"approved_by": "alice"}
        assert _states(runtime, done["executionArn"])[-2:] == ["MarkCompleted", "SagaCompleted"]

        _enqueue(runtime, "e-2")
        sfn.send_task_failure(taskToken=_token("e-2"), error="ApprovalRejected", cause="over budget")
        done = _wait(runtime, "e-2")
        assert done["status"] == "SUCCEEDED"
        assert "CompensateReserve" in _states(runtime, done["executionArn"])
        assert _states(runtime, done["executionArn"])[-2:] == ["MarkCompensated", "SagaCompensated"]
