"""``saga-outbox workflows list`` and ``saga-outbox workflows asl NAME``.

Plugged into ``saga-outbox`` through the entry-point group ``saga_outbox.commands``
(``workflows = "workflows.cli:register"``); also runnable as ``python -m workflows.cli``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from workflows.compiler import compile_definition, to_json
from workflows.definition import WorkflowKind
from workflows.exceptions import WorkflowError
from workflows.registry import all_workflows, default_routes, get_workflow

PLACEHOLDER_ARN = "arn:aws:lambda:us-east-1:000000000000:function:{function}"


def register(subparsers: Any) -> None:
    """Add the ``workflows`` command group to a ``saga-outbox`` subparsers object."""
    parser = subparsers.add_parser("workflows", help="list workflows and print their compiled ASL")
    commands = parser.add_subparsers(dest="workflows_command", required=True)

    list_parser = commands.add_parser("list", help="registered workflows and the events that start them")
    list_parser.set_defaults(func=_list)

    asl = commands.add_parser("asl", help="print the compiled Amazon States Language of a workflow")
    asl.add_argument("name", help="workflow name, e.g. OrderSaga")
    asl.add_argument(
        "--function-arn",
        default=None,
        help="Lambda ARN for the workflow's steps function (default: a placeholder ARN)",
    )
    asl.set_defaults(func=_asl)


def _list(args: argparse.Namespace) -> int:
    routes = default_routes()
    for workflow in all_workflows():
        events = ", ".join(r.event_type for r in routes if r.workflow == workflow.name) or "-"
        steps = " -> ".join(s.name for s in workflow.steps)
        print(f"{workflow.name}\t{WorkflowKind(workflow.kind).value}\t{steps}\tstarted by: {events}")
    return 0


def _asl(args: argparse.Namespace) -> int:
    try:
        workflow = get_workflow(args.name)
        arn = args.function_arn or PLACEHOLDER_ARN.format(function=workflow.function)
        print(to_json(compile_definition(workflow, function_arns={workflow.function: arn})))
    except WorkflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="saga-outbox")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
