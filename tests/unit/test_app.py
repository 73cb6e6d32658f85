"""The app object: declaration, routing, the checks every entry point runs, discovery, and the
``workflows`` CLI pointed at an app."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

import saga_outbox
import saga_outbox.workflows
from saga_outbox import AppError, SagaApp, Step, Workflow, load_app
from saga_outbox.cli import main
from saga_outbox.workflows import UnknownWorkflowError
from tests.apps import room_app


def _app() -> SagaApp:
    app = room_app(with_log=True)
    app.route("RoomRequested", "RoomLog")  # a repeated route is one route
    return app


def test_public_api_is_pinned() -> None:
    assert sorted(saga_outbox.__all__) == [
        "AppError",
        "BusinessRuleViolation",
        "Error",
        "EventRoute",
        "Integration",
        "RetryPolicy",
        "SagaApp",
        "Step",
        "StepContext",
        "TRANSIENT_ERRORS",
        "TransientError",
        "Workflow",
        "WorkflowError",
        "WorkflowKind",
        "load_app",
    ]
    for name in saga_outbox.__all__:
        assert getattr(saga_outbox, name) is not None
    assert sorted(saga_outbox.workflows.__all__) == [
        "CompilationError",
        "Integration",
        "REJECTION_PREFIX",
        "RetryPolicy",
        "Step",
        "TRANSIENT_ERRORS",
        "UnknownWorkflowError",
        "Workflow",
        "WorkflowError",
        "WorkflowKind",
        "WorkflowValidationError",
        "compile_definition",
        "execution_name",
        "function_timeout_seconds",
        "task_timeout_seconds",
        "to_json",
        "workflow_input_budget_bytes",
    ]


def test_one_error_root() -> None:
    from outbox_relay import OutboxError
    from saga_outbox.inspector import InspectorError
    from saga_outbox.lambdas.exceptions import LambdasError

    for cls in (OutboxError, saga_outbox.WorkflowError, LambdasError, InspectorError, AppError):
        assert issubclass(cls, saga_outbox.Error), cls


def test_routing_and_lookup() -> None:
    app = _app().check()
    assert [w.name for w in app.workflows_for("RoomRequested")] == ["RoomSaga", "RoomLog"]
    assert app.workflows_for("Other") == []
    assert len(app.routes) == 3  # RoomRequested twice (the repeat is one), RoomBooked
    assert app.functions() == {"steps"}
    assert ("RoomSaga", "book_room") in app.registry()
    with pytest.raises(UnknownWorkflowError, match=r"'Nope'.*RoomSaga"):
        app.get_workflow("Nope")


def test_check_names_every_missing_action_and_unknown_route() -> None:
    app = SagaApp("shop")
    app.add(
        Workflow(name="RoomSaga", steps=[Step(name="BookRoom", action="book_room", compensation="cancel")])
    )
    app.action("RoomSaga", "book_room")(lambda ctx: {})
    app.action("RoomSaga", "typo")(lambda ctx: {})
    app.route("RoomRequested", "RoomSagaa")
    with pytest.raises(AppError) as info:
        app.check()
    message = str(info.value)
    assert "RoomSaga.cancel" in message
    assert "RoomSagaa" in message
    assert "RoomSaga.typo" in message


def test_declaration_errors_name_the_value() -> None:
    with pytest.raises(AppError, match="'my shop'"):
        SagaApp("my shop")
    app = _app()
    with pytest.raises(AppError, match="already has a different workflow named 'RoomSaga'"):
        app.add(Workflow(name="RoomSaga", steps=[Step(name="Other", action="other")]))
    with pytest.raises(AppError, match="registered twice"):
        app.action("RoomSaga", "book_room")(lambda ctx: {"other": True})
    with pytest.raises(AppError, match="takes a Workflow"):
        app.add("RoomSaga")  # type: ignore[arg-type]
    with pytest.raises(AppError, match="event_type ''"):
        app.route("", "RoomSaga")
    with pytest.raises(AppError, match="no workflow"):
        SagaApp("empty").check()


@pytest.fixture
def app_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    pkg = tmp_path / "myshop_app_test"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "sagas.py").write_text(
        textwrap.dedent(
            """
            from saga_outbox import SagaApp, Step, Workflow

            app = SagaApp("myshop")
            app.add(Workflow(name="RoomSaga", steps=[Step(name="BookRoom", action="book_room")]))
            app.route("RoomRequested", "RoomSaga")

            @app.action("RoomSaga", "book_room")
            def book_room(ctx):
                return {"ok": True}

            def make():
                return app

            incomplete = SagaApp("broken")
            incomplete.add(Workflow(name="X", steps=[Step(name="A", action="a")]))
            not_an_app = 42
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "myshop_app_test.sagas"
    for name in [m for m in sys.modules if m.startswith("myshop_app_test")]:
        del sys.modules[name]


def test_load_app_module_attr(app_module: str) -> None:
    app = load_app(f"{app_module}:app")
    assert app.name == "myshop"
    assert load_app(app_module) is app  # attr defaults to "app"
    assert load_app(f"{app_module}:make") is app  # a factory
    with pytest.raises(AppError, match=r"X\.a"):
        load_app(f"{app_module}:incomplete")
    with pytest.raises(AppError, match=r"is a int, not a saga_outbox\.SagaApp"):
        load_app(f"{app_module}:not_an_app")
    with pytest.raises(AppError, match="has no attribute 'nope'"):
        load_app(f"{app_module}:nope")
    with pytest.raises(AppError, match="cannot import app module 'no_such_module_xyz'"):
        load_app("no_such_module_xyz:app")
    with pytest.raises(AppError, match="expected 'module:attr'"):
        load_app("not a module:app")


def test_cli_workflows_list_and_asl(app_module: str, capsys: pytest.CaptureFixture[str]) -> None:
    spec = f"{app_module}:app"
    assert main(["workflows", "list", "--app", spec]) == 0
    out = capsys.readouterr().out
    assert "RoomSaga" in out and "RoomRequested" in out
    assert main(["workflows", "asl", "RoomSaga", "--app", spec]) == 0
    asl = json.loads(capsys.readouterr().out)
    fn = asl["States"]["BookRoom"]["Parameters"]["FunctionName"]
    assert fn == "arn:aws:lambda:us-east-1:000000000000:function:steps"
    assert main(["workflows", "asl", "RoomSaga", "--app", spec, "--function-arn", "arn:x"]) == 0
    assert '"arn:x"' in capsys.readouterr().out
    assert main(["workflows", "asl", "Nope", "--app", spec]) == 2
    assert "has no workflow 'Nope'" in capsys.readouterr().err


def test_cli_without_an_app_says_how_to_name_one(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SAGA_OUTBOX_APP", raising=False)
    assert main(["workflows", "list"]) == 2
    assert "--app MODULE:ATTR" in capsys.readouterr().err
