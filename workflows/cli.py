"""``saga-outbox workflows list`` and ``saga-outbox workflows asl NAME``.

Plugged into ``saga-outbox`` through the entry-point group ``saga_outbox.commands``
(``workflows = "saga_outbox.workflows.cli:register"``); also runnable as
``python -m saga_outbox.workflows.cli``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from saga_outbox._console import Console
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
    list_parser.add_argument(
        "--json", action="store_true", help="one JSON array: name, kind, steps, started_by of each"
    )
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
    listed = [
        {
            "name": workflow.name,
            "kind": WorkflowKind(workflow.kind).value,
            "steps": [s.name for s in workflow.steps],
            "started_by": [r.event_type for r in app.routes if r.workflow == workflow.name],
        }
        for workflow in app.workflows
    ]
    if args.json:
        print(json.dumps(listed, indent=2))
        return 0
    rows = [
        (w["name"], w["kind"], " -> ".join(w["steps"]), ", ".join(w["started_by"]) or "-") for w in listed
    ]
    Console().table(["WORKFLOW", "KIND", "STEPS", "STARTED BY"], rows)
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
