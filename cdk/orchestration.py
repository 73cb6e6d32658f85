"""Step Functions state machines, one per workflow of the user's :class:`~saga_outbox.SagaApp`.

The ASL comes from :func:`saga_outbox.workflows.compile_definition`, the same function the local runtime
uses, compiled once here with ``${...}`` placeholders for the Lambda ARNs; CloudFormation fills
them through ``DefinitionSubstitutions``. No ASL is written by hand in this package.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from saga_outbox._app import SagaApp
from saga_outbox.cdk.nag import acknowledge
from saga_outbox.cdk.security import EncryptionKey

__all__ = ["Orchestration", "compiled_definitions", "placeholder"]


def placeholder(function: str) -> str:
    """Substitution variable of a logical function name: ``"steps"`` -> ``"StepsFunctionArn"``."""
    words = re.split(r"[^A-Za-z0-9]+", function)
    return "".join(w[:1].upper() + w[1:] for w in words if w) + "FunctionArn"


def compiled_definitions(app: SagaApp) -> dict[str, tuple[Any, dict[str, Any]]]:
    """``{workflow name: (workflow, ASL dict with "${<Function>FunctionArn}" placeholders)}``."""
    from saga_outbox.workflows import compile_definition
    from saga_outbox.workflows.timeouts import function_timeout_seconds

    result: dict[str, tuple[Any, dict[str, Any]]] = {}
    for workflow in app.workflows:
        function = workflow.function
        arns = {function: "${" + placeholder(function) + "}"}
        # every Task waits for the timeout its function is deployed with (Functions uses the
        # same figure), not one worked out from this workflow alone
        timeouts = {function: function_timeout_seconds(app.workflows, function=function)}
        definition = compile_definition(workflow, function_arns=arns, function_timeouts=timeouts)
        result[workflow.name] = (workflow, definition)
    return result


class Orchestration(Construct):
    """Standard (sagas) and Express (projections) state machines with logging ALL and X-Ray."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        app: SagaApp,
        keys: EncryptionKey,
        functions: Mapping[str, lambda_.IFunction],
    ) -> None:
        super().__init__(scope, construct_id)
        stack_name = Stack.of(self).stack_name
        self.state_machines: dict[str, sfn.StateMachine] = {}
        self.log_groups: dict[str, logs.LogGroup] = {}
        self.kinds: dict[str, str] = {}
        #: workflow -> state machine name (a literal, unlike ``state_machine_name``: IAM
        #: statements on a machine's executions name it in their ARN)
        self.names: dict[str, str] = {}
        for name, (workflow, definition) in compiled_definitions(app).items():
            try:
                fn = functions[workflow.function]
            except KeyError:
                raise ValueError(
                    f"workflow {name!r} invokes function {workflow.function!r}; deployed: {sorted(functions)}"
                ) from None
            kind = str(getattr(workflow.kind, "value", workflow.kind))
            # "/aws/vendedlogs/" keeps the log-delivery resource policy small (AWS recommendation).
            log_group = keys.log_group(
                self, f"{name}Logs", name=f"/aws/vendedlogs/states/{stack_name}-{name}"
            )
            self.names[name] = f"{stack_name}-{name}"
            sm = sfn.StateMachine(
                self,
                name,
                state_machine_name=self.names[name],
                state_machine_type=sfn.StateMachineType(kind),
                definition_body=sfn.DefinitionBody.from_string(json.dumps(definition)),
                definition_substitutions={placeholder(workflow.function): fn.function_arn},
                logs=sfn.LogOptions(
                    destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True
                ),
                tracing_enabled=True,
            )
            # Exactly the unqualified function ARN the definition uses (grant_invoke would add ":*").
            sm.add_to_role_policy(
                iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[fn.function_arn])
            )
            acknowledge(
                sm.role,
                "AwsSolutions-IAM5[Resource::*]",
                "Step Functions log delivery (logs:CreateLogDelivery, logs:*LogDelivery*, "
                "logs:DescribeResourcePolicies/LogGroups) and X-Ray tracing require Resource '*'.",
            )
            self.state_machines[name] = sm
            self.log_groups[name] = log_group
            self.kinds[name] = kind
