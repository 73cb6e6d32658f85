"""How code and dependencies reach the functions (no Docker needed).

* **Code**: one asset holding the run-time packages ``outbox_relay``, ``saga_outbox.workflows``
  and ``saga_outbox.lambdas`` in their import layout (shared by all functions, so one upload).
* **Powertools**: the public AWS layer ``AWSLambdaPowertoolsPythonV3-<python>-arm64:<version>``.
* **Other dependencies** (SQLAlchemy, psycopg binary, from ``cdk/layer/requirements.txt``):
  either an existing layer (context ``dependencies_layer_arn``) or a layer the CDK builds at
  synth time with *local* bundling, ``pip install --platform manylinux2014_aarch64
  --only-binary=:all:`` into the asset (needs PyPI access, not Docker). Offline synths (tests,
  ``python -m saga_outbox.cdk.checks``) skip bundling with the ``aws:cdk:bundling-stacks`` context.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import jsii
from aws_cdk import BundlingOptions, DockerImage, ILocalBundling, Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

__all__ = [
    "ARCHITECTURE",
    "RUNTIME",
    "RUNTIME_PACKAGES",
    "code_asset",
    "dependencies_layer",
    "powertools_layer",
    "stage_runtime_packages",
]

LAYER_DIR = Path(__file__).resolve().parent / "layer"
RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.ARM_64
POWERTOOLS_ACCOUNT = "017000801446"

#: the importable packages a function needs at run time, as they are installed (a wheel or an
#: editable checkout whose folders are mapped into the namespace); CDK, the local runtime and
#: the inspector never run in Lambda and stay out of the asset
RUNTIME_PACKAGES = ("outbox_relay", "saga_outbox.workflows", "saga_outbox.lambdas")
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc")


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"cannot locate the installed package {name!r}")
    return Path(next(iter(spec.submodule_search_locations)))


def stage_runtime_packages(target: Path) -> Path:
    """Copy saga-outbox's run-time packages into ``target`` in their import layout
    (``saga_outbox/lambdas/...``, ``outbox_relay/...``), whatever folders they live in here."""
    facade = _package_dir("saga_outbox")
    (target / "saga_outbox").mkdir(parents=True, exist_ok=True)
    for module in ("__init__.py", "_errors.py"):
        shutil.copy2(facade / module, target / "saga_outbox" / module)
    for name in RUNTIME_PACKAGES:
        shutil.copytree(
            _package_dir(name), target.joinpath(*name.split(".")), ignore=_SKIP, dirs_exist_ok=True
        )
    # TODO(construct): the user's code becomes its own asset (source_dir); until then the
    # example app rides along with the package code.
    examples = Path(__file__).resolve().parent.parent / "examples"
    if examples.is_dir():
        shutil.copytree(examples, target / "examples", ignore=_SKIP, dirs_exist_ok=True)
    return target


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def code_asset() -> lambda_.Code:
    """One asset with the run-time packages, shared by every function (one upload).

    Staged under the temp folder by content hash, so two synths of the same code produce the
    same asset path and hash."""
    with tempfile.TemporaryDirectory(prefix="saga-outbox-stage-") as scratch:
        staged = stage_runtime_packages(Path(scratch))
        final = Path(tempfile.gettempdir()) / "saga-outbox-assets" / _tree_digest(staged)
        if not final.exists():
            final.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(staged, final, dirs_exist_ok=True)
    return lambda_.Code.from_asset(str(final))


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
