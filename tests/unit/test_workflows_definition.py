"""Definition-time validation: every rule raises WorkflowValidationError naming the bad value."""

from __future__ import annotations

import dataclasses

import pytest

from saga_outbox.workflows import (
    Integration,
    RetryPolicy,
    Step,
    Workflow,
    WorkflowError,
    WorkflowKind,
    WorkflowValidationError,
)


def step(name: str = "DoIt", **kw: object) -> Step:
    kw.setdefault("action", "do_it")
    return Step(name=name, **kw)  # type: ignore[arg-type]


def express_step(name: str = "Project", **kw: object) -> Step:
    kw.setdefault("idempotent", True)
    kw.setdefault("timeout_seconds", 10)
    return step(name, **kw)


def test_validation_errors_are_workflow_errors_and_value_errors() -> None:
    with pytest.raises(WorkflowError) as info:
        Workflow(name="bad name", steps=[step()])
    assert isinstance(info.value, ValueError)
    assert "'bad name'" in str(info.value)


def test_options_are_keyword_only_and_frozen() -> None:
    with pytest.raises(TypeError):
        RetryPolicy(("States.ALL",))  # type: ignore[misc]
    with pytest.raises(TypeError):
        Step("A", "a")  # type: ignore[misc]
    policy = RetryPolicy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.max_attempts = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"errors": ()}, "errors ()"),
        ({"errors": "States.ALL"}, "errors 'States.ALL'"),
        ({"errors": ("States.ALL", "Boom")}, "alone"),
        ({"errors": ("",)}, "error name ''"),
        ({"interval_seconds": 0}, "interval_seconds 0"),
        ({"interval_seconds": 1.5}, "interval_seconds 1.5"),
        ({"backoff_rate": 0.5}, "backoff_rate 0.5"),
        ({"backoff_rate": float("inf")}, "backoff_rate inf"),
        ({"max_attempts": 0}, "max_attempts 0"),
        ({"max_attempts": True}, "max_attempts True"),
        ({"max_attempts": 101}, "max_attempts 101"),
    ],
)
def test_retry_policy_rules(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(WorkflowValidationError, match="invalid") as info:
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
    assert needle in str(info.value)


def test_retry_waits_follow_backoff() -> None:
    assert RetryPolicy(interval_seconds=2, backoff_rate=3.0, max_attempts=4).retry_wait_seconds == 2 + 6 + 18
    assert RetryPolicy(max_attempts=1).retry_wait_seconds == 0


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"name": ""}, "step name ''"),
        ({"name": "has space"}, "step name 'has space'"),
        ({"name": "1st"}, "step name '1st'"),
        ({"name": "dash-ed"}, "step name 'dash-ed'"),
        ({"name": "A" * 71}, "step name 'AAAA"),
        ({"name": "Start"}, "reserved"),
        ({"name": "CompensationFailed"}, "reserved"),
        ({"action": ""}, "every step needs an action"),
        ({"action": None}, "every step needs an action"),
        ({"action": "do it"}, "action 'do it'"),
        ({"compensation": "undo-it"}, "action 'undo-it'"),
        ({"timeout_seconds": 0}, "timeout_seconds of step 'DoIt' 0"),
        ({"retry": 3}, "retry of step 'DoIt' 3"),
        ({"integration": "lambda.sync"}, "integration 'lambda.sync'"),
        ({"integration": None}, "integration None"),
        ({"idempotent": "yes"}, "idempotent of step 'DoIt' 'yes'"),
    ],
)
def test_step_rules(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(WorkflowValidationError) as info:
        step(**kwargs)  # type: ignore[arg-type]
    assert needle in str(info.value)


def test_step_name_of_70_chars_is_accepted_and_integration_string_is_coerced() -> None:
    s = step("A" * 70, integration="lambda.waitForTaskToken")
    assert s.integration is Integration.LAMBDA_WAIT_FOR_TASK_TOKEN


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"name": ""}, "workflow name ''"),
        ({"name": "a" * 81}, "workflow name 'aaaa"),
        ({"name": "Order/Saga"}, "workflow name 'Order/Saga'"),
        ({"steps": []}, "needs at least one step"),
        ({"steps": [step("A"), step("A")]}, "state name in workflow 'W' 'A': is used twice"),
        ({"steps": [step("A", compensation="undo"), step("CompensateA")]}, "'CompensateA': is used twice"),
        ({"steps": [step("A")], "on_success": step("A")}, "'A': is used twice"),
        ({"steps": [step("A")], "on_success": step("H", compensation="x")}, "hooks take no compensation"),
        ({"steps": ["A"]}, "must be a Step"),
        ({"kind": "BATCH"}, "kind 'BATCH'"),
        ({"kind": 5}, "kind 5"),
        ({"function": "my function"}, "function 'my function'"),
    ],
)
def test_workflow_rules(kwargs: dict[str, object], needle: str) -> None:
    kwargs = {"name": "W", "steps": [step()], **kwargs}
    with pytest.raises(WorkflowValidationError) as info:
        Workflow(**kwargs)  # type: ignore[arg-type]
    assert needle in str(info.value)


def test_express_refuses_a_step_not_declared_idempotent() -> None:
    with pytest.raises(WorkflowValidationError, match=r"'Project'.*idempotent=True"):
        Workflow(name="P", kind=WorkflowKind.EXPRESS, steps=[express_step(idempotent=False)])


def test_express_refuses_wait_for_task_token() -> None:
    with pytest.raises(WorkflowValidationError, match=r"'lambda\.waitForTaskToken'.*waitForTaskToken"):
        Workflow(
            name="P",
            kind=WorkflowKind.EXPRESS,
            steps=[express_step(integration=Integration.LAMBDA_WAIT_FOR_TASK_TOKEN)],
        )


def test_express_refuses_compensations() -> None:
    with pytest.raises(WorkflowValidationError, match=r"compensation of step 'Project'.*'undo'"):
        Workflow(name="P", kind=WorkflowKind.EXPRESS, steps=[express_step(compensation="undo")])
    with pytest.raises(WorkflowValidationError, match="on_compensated"):
        Workflow(name="P", kind="EXPRESS", steps=[express_step()], on_compensated=express_step("Hook"))


def test_express_refuses_a_worst_case_over_five_minutes() -> None:
    slow = RetryPolicy(interval_seconds=10, backoff_rate=2.0, max_attempts=3)  # waits 10 + 20
    # 2 x (60 x 3 + 30) = 420 s
    with pytest.raises(WorkflowValidationError, match=r"420\.0.*300 s Express limit"):
        Workflow(
            name="P",
            kind=WorkflowKind.EXPRESS,
            steps=[
                express_step("A", retry=slow, timeout_seconds=60),
                express_step("B", retry=slow, timeout_seconds=60),
            ],
        )
    # exactly at the limit is fine: 2 x (45 x 3 + 15) = 300
    edge = RetryPolicy(interval_seconds=5, backoff_rate=2.0, max_attempts=3)
    ok = Workflow(
        name="P",
        kind=WorkflowKind.EXPRESS,
        steps=[
            express_step("A", retry=edge, timeout_seconds=45),
            express_step("B", retry=edge, timeout_seconds=45),
        ],
    )
    assert ok.worst_case_seconds() == 300


def test_express_counts_the_on_success_hook() -> None:
    with pytest.raises(WorkflowValidationError, match="worst-case"):
        Workflow(
            name="P",
            kind=WorkflowKind.EXPRESS,
            steps=[express_step(timeout_seconds=100, retry=RetryPolicy(max_attempts=1))],
            on_success=express_step("Hook", timeout_seconds=201, retry=RetryPolicy(max_attempts=1)),
        )


def test_standard_accepts_non_idempotent_long_steps_and_token_waits() -> None:
    w = Workflow(
        name="Long",
        steps=[
            step("Ship", compensation="unship"),
            step("Approve", integration="lambda.waitForTaskToken", timeout_seconds=86_400),
        ],
    )
    assert w.kind is WorkflowKind.STANDARD
    assert isinstance(w.steps, tuple)


FOREVER = RetryPolicy(errors=("States.ALL",), max_attempts=10)


def test_saga_shape_compensable_steps_then_one_pivot_then_retried_steps() -> None:
    """The classic form: compensable steps, at most one pivot (the first without compensation),
    then only steps retried until they succeed."""
    ok = [
        [step("A", compensation="undo_a"), step("B", compensation="undo_b")],
        [step("A", compensation="undo_a"), step("P")],
        [step("P"), step("After", retry=FOREVER), step("More", retry=FOREVER)],
    ]
    for steps in ok:
        Workflow(name="W", steps=steps)
    Workflow(name="W", steps=[step("A", compensation="undo_a")], on_success=step("Confirm"))
    Workflow(name="W", steps=[step("P")], on_success=step("Confirm", retry=FOREVER))


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        # the orders saga before cancel_shipment: shipment (pivot) then a hook that can fail
        (
            {"steps": [step("A", compensation="undo_a"), step("Ship")], "on_success": step("Confirm")},
            "retry errors of step 'Confirm' of workflow 'W'",
        ),
        ({"steps": [step("P"), step("B")]}, "step 'B' of workflow 'W'"),
        ({"steps": [step("P"), step("B", compensation="undo_b")]}, "compensation of step 'B'"),
        (
            {"steps": [step("P"), step("B", compensation="undo_b", retry=FOREVER)]},
            "nothing after the pivot is compensated",
        ),
        ({"steps": [step("P"), step("B", retry=RetryPolicy(max_attempts=99))]}, "after the pivot 'P'"),
    ],
)
def test_saga_shape_refuses_failure_after_the_pivot(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(WorkflowValidationError) as info:
        Workflow(name="W", **kwargs)  # type: ignore[arg-type]
    assert needle in str(info.value)


def test_orders_example_has_the_classic_shape() -> None:
    from examples.orders.workflows import ORDER_SAGA

    assert all(s.compensation for s in ORDER_SAGA.steps)  # the pivot is ConfirmOrder


def test_generated_failure_state_names_are_reserved() -> None:
    with pytest.raises(WorkflowValidationError, match="'AFailed': is used twice"):
        Workflow(name="W", steps=[step("A", compensation="undo"), step("AFailed", compensation="undo")])


def test_lambda_steps_fit_in_a_lambda() -> None:
    with pytest.raises(WorkflowValidationError, match="timeout_seconds of step 'A' 901"):
        step("A", timeout_seconds=901)
    assert step("A", integration="lambda.waitForTaskToken", timeout_seconds=901).timeout_seconds == 901


def test_input_budget_reserves_room_for_results_and_errors() -> None:
    from examples.orders.workflows import ORDER_PROJECTION, ORDER_SAGA
    from saga_outbox.workflows import workflow_input_budget_bytes

    # 4 actions/hooks + 3 compensations + CancelOrder, 8 KiB each; 2 errors; 1 KiB wrapper
    assert workflow_input_budget_bytes(ORDER_SAGA) == 256 * 1024 - 1024 - 8 * 8 * 1024 - 2 * 8 * 1024
    assert workflow_input_budget_bytes(ORDER_PROJECTION) == 256 * 1024 - 1024 - 2 * 8 * 1024
    big = Workflow(name="W", steps=[step("A", compensation="u", max_result_bytes=120_000), step("B")])
    assert workflow_input_budget_bytes(big) < 0  # nothing fits: the steps must return less
    with pytest.raises(WorkflowValidationError, match="max_result_bytes of step 'A' -1"):
        step("A", max_result_bytes=-1)
