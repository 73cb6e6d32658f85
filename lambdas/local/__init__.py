"""In-process stand-ins for AWS pieces that moto cannot run on this machine.

Only :mod:`lambdas.local.lambda_bridge` lives here: it routes moto's Lambda ``Invoke``
(including Step Functions ``lambda:invoke`` tasks) to Python handlers in this process.
"""

from lambdas.local.lambda_bridge import LocalLambdaContext, bridge_lambda, lambda_bridge, unbridge_lambda

__all__ = ["LocalLambdaContext", "bridge_lambda", "lambda_bridge", "unbridge_lambda"]
