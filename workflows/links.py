"""AWS console deep links: the one place in the package that builds them (the dispatcher's log
lines and the inspector both call it), so every partition gets its own console host."""

from __future__ import annotations

__all__ = ["CONSOLE_HOSTS", "console_execution_url", "console_state_machine_url", "is_real_aws_endpoint"]

#: Console host per ARN partition (AWS Management Console endpoints; China and GovCloud have their
#: own consoles, and only the commercial one has per-region hosts).
CONSOLE_HOSTS = {
    "aws": "{region}.console.aws.amazon.com",
    "aws-cn": "console.amazonaws.cn",
    "aws-us-gov": "console.amazonaws-us-gov.com",
}
_AWS_DOMAINS = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws")


def _console_base(arn: str, region: str | None) -> str:
    parts = arn.split(":")
    if len(parts) < 6 or parts[0] != "arn" or parts[2] != "states":
        raise ValueError(f"not a Step Functions ARN: {arn!r}")
    partition, region = parts[1], region or parts[3]
    try:
        host = CONSOLE_HOSTS[partition].format(region=region)
    except KeyError:
        # A made-up host would be a link that leads nowhere; say so instead.
        raise ValueError(f"no public console for partition {partition!r} (ARN {arn!r})") from None
    return f"https://{host}/states/home?region={region}"


def console_execution_url(execution_arn: str, *, region: str | None = None) -> str:
    """The execution's page in the Step Functions console of its partition and region
    (``region`` overrides the ARN's). Raises ``ValueError`` for a non-Step Functions ARN or a
    partition without a public console (``aws-iso*``)."""
    return f"{_console_base(execution_arn, region)}#/v2/executions/details/{execution_arn}"


def console_state_machine_url(state_machine_arn: str, *, region: str | None = None) -> str:
    """The state machine's page in the Step Functions console (same rules as the execution's)."""
    return f"{_console_base(state_machine_arn, region)}#/statemachines/view/{state_machine_arn}"


def is_real_aws_endpoint(endpoint_url: str | None) -> bool:
    """True for boto3's default endpoint (None) or an AWS host; False for localhost, moto, etc."""
    if not endpoint_url:
        return True
    host = endpoint_url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0].lower()
    return host.endswith(_AWS_DOMAINS)
