"""The one exceptions module of the inspector: every error it raises derives from `InspectorError`."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from saga_outbox._errors import Error

__all__ = [
    "ExecutionNotFound",
    "InspectorAWSError",
    "InspectorError",
    "InvalidDefinition",
    "StateMachineNotFound",
]

_NOT_FOUND_CODES = frozenset(
    {"ExecutionDoesNotExist", "StateMachineDoesNotExist", "ResourceNotFound", "ResourceNotFoundException"}
)


class InspectorError(Error):
    """Base class of every error raised by `saga_outbox.inspector`."""


class StateMachineNotFound(InspectorError):
    """No state machine has the given name or ARN."""

    def __init__(self, name_or_arn: str) -> None:
        super().__init__(f"state machine not found: {name_or_arn}")
        self.name_or_arn = name_or_arn


class ExecutionNotFound(InspectorError):
    """No execution has the given ARN."""

    def __init__(self, execution_arn: str) -> None:
        super().__init__(f"execution not found: {execution_arn}")
        self.execution_arn = execution_arn


class InvalidDefinition(InspectorError):
    """A state-machine definition is not valid JSON or lacks `StartAt`/`States`."""


class InspectorAWSError(InspectorError):
    """Any other failure of a Step Functions call (throttling, access denied, network...)."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def translate(
    exc: Exception, *, operation: str, execution_arn: str | None = None, state_machine: str | None = None
) -> InspectorError:
    """Map a botocore error to an `InspectorError` naming what was looked up (raise it `from exc`)."""
    if isinstance(exc, ClientError):
        code = error_code(exc)
        if code in _NOT_FOUND_CODES or code == "InvalidArn":
            if execution_arn is not None and (code != "StateMachineDoesNotExist" or state_machine is None):
                return ExecutionNotFound(execution_arn)
            if state_machine is not None:
                return StateMachineNotFound(state_machine)
        target = execution_arn or state_machine or ""
        message = exc.response.get("Error", {}).get("Message", str(exc))
        return InspectorAWSError(
            f"{operation} failed for {target or 'Step Functions'}: {code}: {message}", code=code
        )
    if isinstance(exc, BotoCoreError):
        return InspectorAWSError(f"{operation} failed: {exc}")
    return InspectorAWSError(f"{operation} failed: {exc!r}")
