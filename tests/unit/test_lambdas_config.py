"""Configuration, task parsing and lazy wiring: no database, no AWS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from saga_outbox import AppError
from saga_outbox.lambdas import runtime
from saga_outbox.lambdas.config import RuntimeConfig
from saga_outbox.lambdas.exceptions import ConfigurationError, LambdasError, MalformedEvent, UnknownAction
from saga_outbox.lambdas.tasks import StepTask

ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:OrderSaga"


def test_from_env_reads_and_validates_everything() -> None:
    cfg = RuntimeConfig.from_env(
        {
            "DATABASE_URL": "postgresql://u@h/db",
            "OUTBOX_SCHEMA": "ob",
            "QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/q.fifo",
            "IDEMPOTENCY_TABLE": "idem",
            "STATE_MACHINE_ARNS": json.dumps({"OrderSaga": ARN}),
            "RELAY_MAX_SECONDS": "12.5",
            "SAGA_OUTBOX_APP": "myshop.sagas:app",
            "RECONCILE_OLDER_THAN_MINUTES": "30",
            "RECONCILE_SINCE_HOURS": "48",
        }
    )
    assert cfg.outbox_schema == "ob" and cfg.app == "myshop.sagas:app"
    assert (cfg.reconcile_older_than_minutes, cfg.reconcile_since_hours) == (30.0, 48.0)
    assert dict(cfg.state_machine_arns) == {"OrderSaga": ARN}
    assert cfg.relay_max_seconds == 12.5
    with pytest.raises(ValueError, match="frozen"):
        cfg.queue_url = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.state_machine_arns["X"] = ARN  # type: ignore[index]


def test_defaults() -> None:
    cfg = RuntimeConfig.from_env({})
    assert (cfg.outbox_schema, cfg.relay_max_seconds, cfg.app) == ("saga_outbox", 50.0, None)
    assert (cfg.reconcile_older_than_minutes, cfg.reconcile_since_hours) == (15.0, 24.0)


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"STATE_MACHINE_ARNS": "{not json"}, "STATE_MACHINE_ARNS"),
        ({"STATE_MACHINE_ARNS": "[1]"}, "STATE_MACHINE_ARNS"),
        ({"STATE_MACHINE_ARNS": '{"OrderSaga": "nope"}'}, "STATE_MACHINE_ARNS"),
        ({"RELAY_MAX_SECONDS": "soon"}, "RELAY_MAX_SECONDS"),
        ({"RELAY_MAX_SECONDS": "0"}, "RELAY_MAX_SECONDS"),
        ({"OUTBOX_SCHEMA": "drop table;"}, "OUTBOX_SCHEMA"),
        ({"DATABASE_PROXY_ENDPOINT": "proxy:5432"}, "DATABASE_SECRET_ARN"),
        ({"RECONCILE_OLDER_THAN_MINUTES": "-1"}, "RECONCILE_OLDER_THAN_MINUTES"),
        ({"RECONCILE_SINCE_HOURS": "0"}, "RECONCILE_SINCE_HOURS"),
    ],
)
def test_invalid_values_name_the_variable(env: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigurationError, match=names):
        RuntimeConfig.from_env(env)


def test_require_names_the_missing_variable() -> None:
    cfg = RuntimeConfig()
    for setting, variable in (("queue_url", "QUEUE_URL"), ("idempotency_table", "IDEMPOTENCY_TABLE")):
        with pytest.raises(ConfigurationError, match=variable):
            cfg.require(setting)
    with pytest.raises(ConfigurationError, match="DATABASE_URL"):
        cfg.require("database")
    RuntimeConfig(
        database_secret_arn="arn:aws:secretsmanager:us-east-1:1:secret:db",
        database_proxy_endpoint="proxy.example",
        database_name="app",
    ).require("database")


def test_importing_handlers_reads_no_environment() -> None:
    """Import every handler in a fresh interpreter with a broken environment: no error until
    the first invocation, which names the bad variable."""
    code = (
        "import saga_outbox.lambdas.handlers.relay\n"
        "import saga_outbox.lambdas.handlers.reconciler\n"
        "import saga_outbox.lambdas.handlers.steps\n"
        "from saga_outbox.lambdas.handlers import dispatcher\n"
        "try:\n"
        "    dispatcher.handler({'Records': []}, None)\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    env = {**os.environ, "STATE_MACHINE_ARNS": "{broken"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.startswith("ConfigurationError STATE_MACHINE_ARNS is not valid JSON"), out


def test_configure_injects_clients_into_lazy_handlers() -> None:
    built: list[Any] = []

    def factory(rt: runtime.Runtime) -> Any:
        built.append(rt)
        return lambda event, context: (rt.sfn_client, event)

    lazy = runtime.LazyHandler(factory)
    sentinel = object()
    try:
        rt = runtime.configure(RuntimeConfig(), sfn_client=sentinel)
        assert lazy({"a": 1}, None) == (sentinel, {"a": 1})
        assert lazy({"a": 2}, None) == (sentinel, {"a": 2})
        assert built == [rt]  # built once per runtime (cold start)
        runtime.configure(RuntimeConfig(), sfn_client="other")
        assert lazy({}, None)[0] == "other"
    finally:
        runtime.reset()


def payload(**overrides: Any) -> dict[str, Any]:
    base = {
        "workflow": "OrderSaga",
        "step": "ChargePayment",
        "action": "refund_payment",
        "kind": "compensation",
        "execution": "e-1",
        "state": "CompensateChargePayment",
        "event": {
            "event_id": "6f1f1f1f-1f1f-4f1f-8f1f-1f1f1f1f1f1f",
            "event_type": "OrderPlaced",
            "payload": {},
        },
        "results": {"ChargePayment": {"output": {"payment_id": 7}}},
    }
    return {**base, **overrides}


def test_step_task_parses_the_contract() -> None:
    task = StepTask.from_payload(payload())
    assert task.effect_key == "e-1:CompensateChargePayment"
    assert task.result_of("ChargePayment") == {"payment_id": 7}
    assert task.result_of("ReserveInventory") is None
    assert str(task.event_id) == "6f1f1f1f-1f1f-4f1f-8f1f-1f1f1f1f1f1f"


@pytest.mark.parametrize(
    "bad",
    [
        {"execution": ""},
        {"kind": "other"},
        {"event": {"event_id": "x"}},
        {"results": [1]},
    ],
)
def test_step_task_rejects_malformed_payloads(bad: dict[str, Any]) -> None:
    with pytest.raises(MalformedEvent):
        StepTask.from_payload(payload(**bad))


def test_registry_lookup_names_the_known_actions() -> None:
    from saga_outbox.lambdas.tasks import ActionRegistry

    registry = ActionRegistry({("RoomSaga", "book_room"): lambda ctx: {}})
    assert ("RoomSaga", "book_room") in registry
    with pytest.raises(UnknownAction, match=r"'teleport'.*RoomSaga.book_room"):
        registry.lookup("RoomSaga", "teleport")


def test_runtime_loads_the_app_named_by_the_environment() -> None:
    rt = runtime.Runtime(RuntimeConfig())
    with pytest.raises(ConfigurationError, match="SAGA_OUTBOX_APP"):
        _ = rt.app
    rt = runtime.Runtime(RuntimeConfig(app="no_such_module_xyz:app"))
    with pytest.raises(AppError, match="no_such_module_xyz"):
        _ = rt.app


def test_task_token_reaches_the_context() -> None:
    task = StepTask.from_payload(payload(task_token="token-1"))
    assert task.task_token == "token-1"
    assert StepTask.from_payload(payload()).task_token is None
    with pytest.raises(MalformedEvent, match="task_token"):
        StepTask.from_payload(payload(task_token=""))


def test_every_error_derives_from_one_base() -> None:
    import saga_outbox.lambdas.exceptions as exc

    for name in exc.__all__:
        value = getattr(exc, name)
        if isinstance(value, type):
            assert issubclass(value, LambdasError), name


def test_iam_engine_uses_secret_username_and_a_token_per_connection(aws_env: None) -> None:
    import boto3
    from moto import mock_aws

    with mock_aws():
        secrets = boto3.client("secretsmanager", region_name="us-east-1")
        arn = secrets.create_secret(Name="db", SecretString=json.dumps({"username": "app_user"}))["ARN"]
        cfg = RuntimeConfig(
            database_secret_arn=arn, database_proxy_endpoint="proxy.local:6432", database_name="app"
        )
        rt = runtime.Runtime(
            cfg, secrets_client=secrets, rds_client=boto3.client("rds", region_name="us-east-1")
        )
        engine = rt.engine
        assert (engine.url.username, engine.url.host, engine.url.port, engine.url.database) == (
            "app_user",
            "proxy.local",
            6432,
            "app",
        )
        assert engine.url.query["sslmode"] == "require"
        cparams: dict[str, Any] = {}
        engine.dialect.dispatch.do_connect(engine.dialect, None, [], cparams)
        assert "X-Amz-Signature" in cparams["password"]
        rt.close()
        missing = RuntimeConfig(
            database_secret_arn=arn + "-gone", database_proxy_endpoint="proxy.local", database_name="app"
        )
        with pytest.raises(ConfigurationError, match="DATABASE_SECRET_ARN"):
            _ = runtime.Runtime(missing, secrets_client=secrets).engine
