"""The public list prices the cost estimate uses: one table, with its region and date.

Checked against the AWS pricing pages for us-east-1 (stored copies, 2026-12). Prices change and
differ per region: pass your own :class:`PriceTable` to :func:`~saga_outbox.ops.estimate_cost`.
Free tiers are ignored (they matter only at the smallest volumes)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PRICES", "PriceTable"]


@dataclass(frozen=True, kw_only=True)
class PriceTable:
    region: str
    as_of: str
    #: Step Functions Standard, per state transition (retries included)
    sfn_standard_transition: float
    #: Step Functions Express, per request (execution start)
    sfn_express_request: float
    #: Step Functions Express, per GB-second (duration rounded up to 100 ms, memory in 64 MB chunks)
    sfn_express_gb_second: float
    #: SQS FIFO, per request (each 64 KB chunk of a payload is one request)
    sqs_fifo_request: float
    #: Lambda, per request
    lambda_request: float
    #: Lambda on arm64, per GB-second
    lambda_arm_gb_second: float

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if name not in ("region", "as_of") and (not isinstance(value, int | float) or value < 0):
                raise ValueError(f"price {name} must be a non-negative number, got {value!r}")


PRICES = PriceTable(
    region="us-east-1",
    as_of="2026-12",
    sfn_standard_transition=0.025 / 1_000,
    sfn_express_request=1.00 / 1_000_000,
    sfn_express_gb_second=0.00001667,
    sqs_fifo_request=0.50 / 1_000_000,
    lambda_request=0.20 / 1_000_000,
    lambda_arm_gb_second=0.0000133334,
)
