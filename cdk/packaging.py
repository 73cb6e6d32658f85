"""How code and dependencies reach the functions (no Docker needed).

* **The user's code**: one asset of their ``source_dir`` (minus :data:`DEFAULT_EXCLUDES`),
  shared by all functions, so one upload; the handlers import the app from it
  (``SAGA_OUTBOX_APP``).
* **saga-outbox itself**: a layer (``python/`` prefix, so it lands on ``/opt/python``) holding the
  run-time packages ``outbox_relay``, the ``saga_outbox`` facade, ``saga_outbox.workflows``,
  ``saga_outbox.lambdas`` (plus ``ops`` and ``inspector`` for the reconciler) in their import
  layout. It needs no bundling, so it exists offline too.
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
from collections.abc import Callable, Sequence
from pathlib import Path

import jsii
from aws_cdk import BundlingOptions, DockerImage, ILocalBundling, Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

__all__ = [
    "ARCHITECTURE",
    "DEFAULT_EXCLUDES",
    "RUNTIME",
    "RUNTIME_PACKAGES",
    "dependencies_layer",
    "powertools_layer",
    "runtime_layer",
    "stage_runtime_packages",
    "staged_directory",
    "user_code",
]

LAYER_DIR = Path(__file__).resolve().parent / "layer"
RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.ARM_64
POWERTOOLS_ACCOUNT = "017000801446"

#: the importable packages a function needs at run time, as they are installed (a wheel or an
#: editable checkout whose folders are mapped into the namespace); CDK, the local runtime and
#: the inspector never run in Lambda and stay out of the asset
#: ``ops`` (and the ``inspector`` its CompensationFailed report reads executions with) for the
#: scheduled reconciler; both are stdlib + botocore at run time
RUNTIME_PACKAGES = (
    "outbox_relay",
    "saga_outbox.workflows",
    "saga_outbox.lambdas",
    "saga_outbox.ops",
    "saga_outbox.inspector",
)
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc")

#: never part of a user's code asset: environments, build output, VCS, caches, tests
DEFAULT_EXCLUDES = (
    ".venv",
    "venv",
    ".env",
    "cdk.out",
    "**/__pycache__",
    "*.pyc",
    ".git",
    ".hg",
    "tests",
    "node_modules",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".tox",
    "*.egg-info",
)


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
    # The facade's own modules (app object, discovery, error root); in an installed wheel its
    # folder also holds the cdk/local/inspector sub-packages, which never run in Lambda.
    for module in sorted(facade.glob("*.py")):
        shutil.copy2(module, target / "saga_outbox" / module.name)
    for name in RUNTIME_PACKAGES:
        shutil.copytree(
            _package_dir(name), target.joinpath(*name.split(".")), ignore=_SKIP, dirs_exist_ok=True
        )
    return target


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def staged_directory(kind: str, fill: Callable[[Path], object]) -> Path:
    """A directory filled by ``fill(path)``, kept under the temp folder by content hash, so two
    synths of the same content produce the same asset path and hash (and the staging is cheap)."""
    with tempfile.TemporaryDirectory(prefix=f"saga-outbox-{kind}-") as scratch:
        fill(Path(scratch))
        final = Path(tempfile.gettempdir()) / "saga-outbox-assets" / f"{kind}-{_tree_digest(Path(scratch))}"
        if not final.exists():
            final.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(scratch, final, dirs_exist_ok=True)
    return final


def runtime_layer(scope: Construct, construct_id: str) -> lambda_.LayerVersion:
    """saga-outbox's run-time packages as a layer (``python/...`` lands on ``/opt/python``)."""
    staged = staged_directory("layer", lambda root: stage_runtime_packages(root / "python"))
    return lambda_.LayerVersion(
        scope,
        construct_id,
        description="saga-outbox runtime (outbox_relay, saga_outbox workflows and handlers)",
        compatible_runtimes=[RUNTIME],
        compatible_architectures=[ARCHITECTURE],
        code=lambda_.Code.from_asset(str(staged)),
    )


def user_code(source_dir: str | Path, *, exclude: Sequence[str] | None = None) -> lambda_.Code:
    """The user's ``source_dir`` as one asset, minus :data:`DEFAULT_EXCLUDES` and ``exclude``."""
    root = Path(source_dir).resolve()
    if not root.is_dir():
        raise ValueError(f"source_dir {str(source_dir)!r} is not a directory")
    return lambda_.Code.from_asset(str(root), exclude=[*DEFAULT_EXCLUDES, *(exclude or ())])


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
