"""Find a user's :class:`~saga_outbox.SagaApp` from ``module:attr`` (``--app``, or the
``SAGA_OUTBOX_APP`` environment variable the Lambda handlers read at cold start), the way
uvicorn and Celery find theirs. ``attr`` may also name a function that returns the app."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Mapping

from ._app import SagaApp
from ._errors import AppError

__all__ = ["APP_ENV", "add_app_argument", "app_from_args", "app_from_env", "load_app"]

APP_ENV = "SAGA_OUTBOX_APP"


def load_app(spec: str | SagaApp, *, check: bool = True) -> SagaApp:
    """Import ``"package.module:attr"`` (``attr`` defaults to ``app``) and return the checked app.

    The current directory is importable, as for ``python -m``: a user runs the CLI from their
    project root."""
    if isinstance(spec, SagaApp):
        return spec.check() if check else spec
    if not isinstance(spec, str) or not spec.strip():
        raise AppError(f"invalid app {spec!r}: expected 'module:attr', e.g. 'myshop.sagas:app'")
    module_name, _, attr = spec.strip().partition(":")
    attr = attr or "app"
    if not module_name or not all(part.isidentifier() for part in module_name.split(".")):
        raise AppError(f"invalid app {spec!r}: expected 'module:attr', e.g. 'myshop.sagas:app'")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise AppError(
                f"cannot import app module {module_name!r} (from {spec!r}): {exc}; "
                "run from your project root or put it on PYTHONPATH"
            ) from exc
        raise
    target: object = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise AppError(f"module {module_name!r} has no attribute {attr!r} (from {spec!r})") from None
    if not isinstance(target, SagaApp) and callable(target):
        target = target()
    if not isinstance(target, SagaApp):
        raise AppError(f"{spec!r} is a {type(target).__name__}, not a saga_outbox.SagaApp")
    return target.check() if check else target


def app_from_env(environ: Mapping[str, str] | None = None) -> SagaApp:
    """The app named by ``SAGA_OUTBOX_APP`` (the Lambda handlers' cold start)."""
    env = os.environ if environ is None else environ
    spec = env.get(APP_ENV, "").strip()
    if not spec:
        raise AppError(f"{APP_ENV} is not set: name your app as 'module:attr', e.g. 'myshop.sagas:app'")
    return load_app(spec)


def add_app_argument(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``--app MODULE:ATTR`` (default ``$SAGA_OUTBOX_APP``) on a CLI verb that needs the app."""
    parser.add_argument(
        "--app",
        default=None,
        metavar="MODULE:ATTR",
        help=f"your SagaApp, e.g. myshop.sagas:app (default: ${APP_ENV})",
    )
    parser.set_defaults(_app_required=required)


def app_from_args(args: argparse.Namespace) -> SagaApp:
    """The app named by ``--app`` or ``$SAGA_OUTBOX_APP``."""
    spec = getattr(args, "app", None) or os.environ.get(APP_ENV, "").strip()
    if not spec:
        raise AppError(f"no app: pass --app MODULE:ATTR (e.g. myshop.sagas:app) or set {APP_ENV}")
    return load_app(spec)
