"""How code and dependencies reach the functions (no Docker needed).

* **Code**: one asset of the repo root holding only ``outbox_relay/``, ``workflows/`` and
  ``lambdas/`` (shared by all functions, so one upload).
* **Powertools**: the public AWS layer ``AWSLambdaPowertoolsPythonV3-<python>-arm64:<version>``.
* **Other dependencies** (SQLAlchemy, psycopg binary, from ``cdk/layer/requirements.txt``):
  either an existing layer (context ``dependencies_layer_arn``) or a layer the CDK builds at
  synth time with *local* bundling, ``pip install --platform manylinux2014_aarch64
  --only-binary=:all:`` into the asset (needs PyPI access, not Docker). Offline synths (tests,
  ``python -m cdk.checks``) skip bundling with the ``aws:cdk:bundling-stacks`` context.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jsii
from aws_cdk import BundlingOptions, DockerImage, IgnoreMode, ILocalBundling, Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

__all__ = [
    "ARCHITECTURE",
    "CODE_EXCLUDES",
    "REPO_ROOT",
    "RUNTIME",
    "code_asset",
    "dependencies_layer",
    "powertools_layer",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
LAYER_DIR = Path(__file__).resolve().parent / "layer"
RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.ARM_64
POWERTOOLS_ACCOUNT = "017000801446"

# .gitignore syntax: everything at the top level except the three runtime packages.
CODE_EXCLUDES = [
    "/*",
    "!/outbox_relay/",
    "!/workflows/",
    "!/lambdas/",
    "__pycache__/",
    "*.pyc",
    "/lambdas/local/",
]


def code_asset() -> lambda_.Code:
    return lambda_.Code.from_asset(str(REPO_ROOT), exclude=CODE_EXCLUDES, ignore_mode=IgnoreMode.GIT)


def _python_tag() -> str:
    return RUNTIME.name.replace(".", "")  # "python3.14" -> "python314"


def powertools_layer(scope: Construct, construct_id: str, *, version: int) -> lambda_.ILayerVersion:
    """The public Powertools for AWS Lambda (Python) v3 layer of the stack's region."""
    stack = Stack.of(scope)
    arn = (
        f"arn:{stack.partition}:lambda:{stack.region}:{POWERTOOLS_ACCOUNT}:layer:"
        f"AWSLambdaPowertoolsPythonV3-{_python_tag()}-arm64:{version}"
    )
    return lambda_.LayerVersion.from_layer_version_arn(scope, construct_id, arn)


@jsii.implements(ILocalBundling)
class _PipLocalBundling:
    """Install ``requirements.txt`` for the Lambda platform with the local pip (no Docker)."""

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_: object) -> bool:
        version = RUNTIME.name.removeprefix("python")
        command = [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-compile",
            "--platform", "manylinux2014_aarch64", "--implementation", "cp",
            "--python-version", version, "--only-binary=:all:",
            "--target", str(Path(output_dir) / "python"),
            "-r", str(LAYER_DIR / "requirements.txt"),
        ]  # fmt: skip
        try:
            subprocess.run(command, check=True)
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(
                "building the dependencies layer failed (pip needs PyPI access); "
                "pass -c dependencies_layer_arn=<arn> to use a prebuilt layer instead"
            ) from exc
        return True


def dependencies_layer(
    scope: Construct, construct_id: str, *, layer_arn: str | None
) -> lambda_.ILayerVersion:
    """SQLAlchemy + psycopg: an existing layer, or one built by local pip bundling."""
    if layer_arn:
        return lambda_.LayerVersion.from_layer_version_arn(scope, construct_id, layer_arn)
    return lambda_.LayerVersion(
        scope,
        construct_id,
        description="saga-outbox dependencies (cdk/layer/requirements.txt)",
        compatible_runtimes=[RUNTIME],
        compatible_architectures=[ARCHITECTURE],
        code=lambda_.Code.from_asset(
            str(LAYER_DIR),
            bundling=BundlingOptions(
                # Never pulled: local bundling always succeeds or raises. Required by the API.
                image=RUNTIME.bundling_image,
                local=_PipLocalBundling(),
            ),
        ),
    )
