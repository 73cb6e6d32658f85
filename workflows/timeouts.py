"""The steps function's timeout and every Task's ``TimeoutSeconds``, derived in one place.

A Task must outlast the Lambda it invokes: when the Task's ``TimeoutSeconds`` fires first the
state fails with ``States.Timeout`` while the function may still commit, and when both are
equal a race decides which error the saga sees. So the function's timeout comes from the
steps (the longest ``timeout_seconds`` of the request/response Lambda Tasks that invoke it)
and each Task waits that long plus a margin for the Init phase and the round trip. CDK sets
the function's timeout from :func:`function_timeout_seconds` and passes the same figure to
``compile_definition(..., function_timeouts=...)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

from saga_outbox.workflows.definition import Integration
from saga_outbox.workflows.exceptions import CompilationError

if TYPE_CHECKING:
    from saga_outbox.workflows.definition import Step, Workflow

__all__ = [
    "LAMBDA_INIT_SECONDS",
    "LAMBDA_MAX_TIMEOUT_SECONDS",
    "function_timeout_seconds",
    "lambda_tasks",
    "task_timeout_seconds",
]

LAMBDA_MAX_TIMEOUT_SECONDS = 900
"""Lambda's own ceiling for a function timeout."""

LAMBDA_INIT_SECONDS = 10
"""A cold start's Init phase runs before the handler and outside the function timeout (up to
10 s): the Task's clock already runs."""


def lambda_tasks(workflow: Workflow) -> tuple[Step, ...]:
    """Steps and hooks whose Task runs on the Lambda's clock (request/response); their
    compensations run with the step's settings. Task-token steps wait for someone else."""
    return tuple(s for s in (*workflow.steps, *workflow.hooks()) if s.integration is Integration.LAMBDA)


def function_timeout_seconds(workflows: Iterable[Workflow], *, function: str = "steps") -> int:
    """Timeout to give the Lambda behind ``function``: the longest ``timeout_seconds`` of the
    request/response Tasks of those ``workflows`` that invoke it (30 s, the Step default, when
    only task-token steps do)."""
    if not isinstance(function, str) or not function:
        raise CompilationError(f"invalid function {function!r}: must be a non-empty string")
    budgets = [s.timeout_seconds for w in workflows if w.function == function for s in lambda_tasks(w)]
    seconds = max(budgets, default=30)
    if seconds > LAMBDA_MAX_TIMEOUT_SECONDS:
        raise CompilationError(
            f"invalid timeout_seconds {seconds!r} for function {function!r}: a Lambda runs at most "
            f"{LAMBDA_MAX_TIMEOUT_SECONDS} s; use a task-token step for longer work"
        )
    return seconds


def task_timeout_seconds(function_timeout: int) -> int:
    """ASL ``TimeoutSeconds`` of a request/response Task on a function with this timeout: the
    function timeout, the Init phase, and 10% (at least 2 s) for the invoke round trip."""
    if isinstance(function_timeout, bool) or not isinstance(function_timeout, int) or function_timeout < 1:
        raise CompilationError(f"invalid function timeout {function_timeout!r}: must be an int >= 1")
    return function_timeout + LAMBDA_INIT_SECONDS + max(2, math.ceil(function_timeout / 10))
