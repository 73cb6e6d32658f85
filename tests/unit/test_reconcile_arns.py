"""The reconciler finds each workflow's state machine by name (``<workflow>`` locally,
``<stack>-<workflow>`` from the construct) or from STATE_MACHINE_ARNS-style JSON, and refuses
to guess: a missing or ambiguous machine is an error naming the workflow."""

from __future__ import annotations

import pytest

from saga_outbox import Error
from saga_outbox.ops._reconcile_arns import (
    ReconcileInputError,
    match_state_machines,
    parse_state_machine_arns,
    resolve_state_machine_arns,
)
from saga_outbox.ops.reconcile import deadline_seconds

ARN = "arn:aws:states:eu-west-1:111122223333:stateMachine:"


def machines(*names: str) -> list[tuple[str, str]]:
    return [(n, ARN + n) for n in names]


def test_exact_and_stack_prefixed_names_resolve() -> None:
    found = match_state_machines(
        ["OrderSaga", "OrderView"],
        machines("prod-OrderSaga", "OrderView", "prod-OrderSagaV2", "unrelated", "OrderSagaX"),
    )
    assert found == {"OrderSaga": ARN + "prod-OrderSaga", "OrderView": ARN + "OrderView"}


def test_a_machine_belongs_to_the_longest_workflow_it_names() -> None:
    # "prod-Order-Saga" ends with "-Saga" too, but names the workflow "Order-Saga" in full
    found = match_state_machines(["Saga", "Order-Saga"], machines("prod-Order-Saga", "prod-Saga"))
    assert found == {"Saga": ARN + "prod-Saga", "Order-Saga": ARN + "prod-Order-Saga"}


def test_two_stacks_are_ambiguous_and_the_error_names_both() -> None:
    with pytest.raises(ReconcileInputError, match=r"'OrderSaga' matches several.*prod-OrderSaga, staging"):
        match_state_machines(["OrderSaga"], machines("staging-OrderSaga", "prod-OrderSaga"))


def test_a_missing_machine_names_the_workflow() -> None:
    with pytest.raises(ReconcileInputError, match="for workflow 'OrderSaga'") as caught:
        match_state_machines(["OrderSaga"], machines("OrderSagaOld", "prod-Other"))
    assert isinstance(caught.value, Error)


class _Pages:
    def __init__(self, pages: list[dict]) -> None:
        self.pages = pages

    def get_paginator(self, operation: str) -> _Pages:
        assert operation == "list_state_machines"
        return self

    def paginate(self) -> list[dict]:
        return self.pages


def test_resolution_reads_every_page() -> None:
    client = _Pages(
        [
            {"stateMachines": [{"name": "s-A", "stateMachineArn": ARN + "s-A"}]},
            {"stateMachines": [{"name": "s-B", "stateMachineArn": ARN + "s-B"}]},
        ]
    )
    assert resolve_state_machine_arns(client, ["A", "B"]) == {"A": ARN + "s-A", "B": ARN + "s-B"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "is not JSON"),
        ('{"A": 3}', "must be a JSON object"),
        ('{"A": "not-an-arn"}', "must be a JSON object"),
        (f'{{"A": "{ARN}A", "Typo": "{ARN}T"}}', "does not have: Typo"),
        ("{}", "no ARN for workflow(s): A"),
    ],
)
def test_bad_json_mappings(text: str, message: str) -> None:
    with pytest.raises(ReconcileInputError) as caught:
        parse_state_machine_arns(text, ["A", "B"], required=["A"])
    assert message in str(caught.value)


def test_a_mapping_may_leave_unrouted_workflows_out() -> None:
    assert parse_state_machine_arns(f'{{"A": "{ARN}A"}}', ["A", "B"], required=["A"]) == {"A": ARN + "A"}


def test_the_deadline_counts_compiled_task_timeouts_compensations_and_the_margin() -> None:
    from saga_outbox import RetryPolicy, SagaApp, Step, Workflow

    app = SagaApp("t")
    once = RetryPolicy(max_attempts=1)
    wf = app.add(
        Workflow(
            name="W",
            steps=[
                Step(name="A", action="a", compensation="ua", timeout_seconds=20, retry=once),
                Step(name="B", action="b", timeout_seconds=20, retry=RetryPolicy(max_attempts=2)),
            ],
        )
    )
    # Task timeout = 20 s function + 10 s Init + max(2, 10%) = 32 s; A once, B twice + 1 s wait,
    # A's compensation once, then the margin
    assert deadline_seconds(app, wf, margin_seconds=100) == 32 + (2 * 32 + 1) + 32 + 100
    assert wf.worst_case_seconds() < deadline_seconds(app, wf, margin_seconds=0)


def test_reconcile_against_a_loopback_endpoint_needs_no_aws_keys(monkeypatch):
    """`saga-outbox reconcile --endpoint-url http://127.0.0.1:...` with no AWS keys set: the
    local emulator accepts any key, so the client gets the local pair (it used to raise)."""
    from saga_outbox.ops.cli import _sfn_client

    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    client = _sfn_client("http://127.0.0.1:5000", "us-east-1")
    credentials = client._request_signer._credentials
    assert (credentials.access_key, credentials.secret_key) == ("local", "local")
