"""Inspect Step Functions executions (moto or real AWS, same boto3 code): per-state outcomes
including saga compensations, the path taken, the events table, console links, a CLI and a page."""

from .errors import (
    ExecutionNotFound,
    InspectorAWSError,
    InspectorError,
    InvalidDefinition,
    StateMachineNotFound,
)
from .inspector import ExecutionInspector, ExecutionSummary, StateMachineSummary
from .links import console_execution_url, console_state_machine_url, is_real_aws_endpoint
from .model import (
    EventRow,
    ExecutionReport,
    GraphEdge,
    GraphNode,
    Outcome,
    StateGraph,
    StateReport,
    StateRun,
    build_report,
    parse_definition,
    parse_history,
)
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
