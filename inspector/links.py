"""AWS console deep links for executions and state machines."""

from __future__ import annotations

__all__ = ["console_execution_url", "console_state_machine_url", "is_real_aws_endpoint", "region_of_arn"]

_CONSOLE_HOSTS = {
    "aws": "{region}.console.aws.amazon.com",
    "aws-cn": "console.amazonaws.cn",
    "aws-us-gov": "console.amazonaws-us-gov.com",
}
_AWS_DOMAINS = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws")


def _parts(arn: str) -> list[str]:
    parts = arn.split(":")
    if len(parts) < 6 or parts[0] != "arn":
        raise ValueError(f"not an ARN: {arn!r}")
    return parts


def region_of_arn(arn: str) -> str:
    return _parts(arn)[3]


def _base(arn: str, region: str | None) -> tuple[str, str]:
    parts = _parts(arn)
    region = region or parts[3]
    host = _CONSOLE_HOSTS.get(parts[1], _CONSOLE_HOSTS["aws"]).format(region=region)
    return f"https://{host}/states/home?region={region}", region


def console_execution_url(execution_arn: str, *, region: str | None = None) -> str:
    """``https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{arn}``"""
    base, _ = _base(execution_arn, region)
    return f"{base}#/v2/executions/details/{execution_arn}"


def console_state_machine_url(state_machine_arn: str, *, region: str | None = None) -> str:
    """``https://{region}.console.aws.amazon.com/states/home?region={region}#/statemachines/view/{arn}``"""
    base, _ = _base(state_machine_arn, region)
    return f"{base}#/statemachines/view/{state_machine_arn}"


def is_real_aws_endpoint(endpoint_url: str | None) -> bool:
    """True for boto3's default endpoint (None) or an ``*.amazonaws.com`` host; False for localhost etc."""
    if not endpoint_url:
        return True
    host = endpoint_url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0].lower()
    return host.endswith(_AWS_DOMAINS)
