"""``saga-outbox workflows list`` and ``saga-outbox workflows asl NAME``.

Plugged into ``saga-outbox`` through the entry-point group ``saga_outbox.commands``
(``workflows = "saga_outbox.workflows.cli:register"``); also runnable as
``python -m saga_outbox.workflows.cli``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from saga_outbox._discovery import add_app_argument, app_from_args
from saga_outbox.workflows.compiler import compile_definition, to_json
from saga_outbox.workflows.definition import WorkflowKind

PLACEHOLDER_ARN = "arn:aws:lambda:us-east-1:000000000000:function:{function}"


def register(subparsers: Any) -> None:
    """Add the ``workflows`` command group to a ``saga-outbox`` subparsers object."""
    parser = subparsers.add_parser("workflows", help="list workflows and print their compiled ASL")
    commands = parser.add_subparsers(dest="workflows_command", required=True)

    list_parser = commands.add_parser("list", help="registered workflows and the events that start them")
    add_app_argument(list_parser)
    list_parser.set_defaults(func=_list)

    asl = commands.add_parser("asl", help="print the compiled Amazon States Language of a workflow")
    asl.add_argument("name", help="workflow name, e.g. RoomSaga")
    asl.add_argument(
        "--function-arn",
        default=None,
        help="Lambda ARN for the workflow's steps function (default: a placeholder ARN)",
    )
    add_app_argument(asl)
    asl.set_defaults(func=_asl)


def _list(args: argparse.Namespace) -> int:
    app = app_from_args(args)
    routes = app.routes
    for workflow in app.workflows:
        events = ", ".join(r.event_type for r in routes if r.workflow == workflow.name) or "-"
        steps = " -> ".join(s.name for s in workflow.steps)
        print(f"{workflow.name}\t{WorkflowKind(workflow.kind).value}\t{steps}\tstarted by: {events}")
    return 0


def _asl(args: argparse.Namespace) -> int:
    workflow = app_from_args(args).get_workflow(args.name)
    arn = args.function_arn or PLACEHOLDER_ARN.format(function=workflow.function)
    print(to_json(compile_definition(workflow, function_arns={workflow.function: arn})))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``saga-outbox`` itself (errors print one line and exit 2)."""
    from saga_outbox.cli import main as run

    return run(argv)


if __name__ == "__main__":
    raise SystemExit(main())
