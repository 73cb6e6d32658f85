"""Inspect Step Functions executions (moto or real AWS, same boto3 code): per-state outcomes
including saga compensations, the saga's outcome, the path taken, the events table, console
links, a CLI and a page. It reads the compiler's own state names and Payload, never guesses."""

from saga_outbox.workflows.links import console_execution_url, console_state_machine_url, is_real_aws_endpoint

from .errors import (
    ExecutionNotFound,
    InspectorAWSError,
    InspectorError,
    InvalidDefinition,
    StateMachineNotFound,
)
from .graph import GraphEdge, GraphNode, StateGraph, parse_definition
from .history import EventRow, StateRun, parse_history
from .inspector import ExecutionInspector, ExecutionSummary, StateMachineSummary
from .report import ExecutionReport, Outcome, StateReport, build_report
from .server import InspectorServer, serve_inspector

__all__ = [
    "EventRow",
    "ExecutionInspector",
    "ExecutionNotFound",
    "ExecutionReport",
    "ExecutionSummary",
    "GraphEdge",
    "GraphNode",
    "InspectorAWSError",
    "InspectorError",
    "InspectorServer",
    "InvalidDefinition",
    "Outcome",
    "StateGraph",
    "StateMachineNotFound",
    "StateMachineSummary",
    "StateReport",
    "StateRun",
    "build_report",
    "console_execution_url",
    "console_state_machine_url",
    "is_real_aws_endpoint",
    "parse_definition",
    "parse_history",
    "serve_inspector",
]
