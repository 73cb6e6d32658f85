"""The one-namespace layout: every package folder of the repository is installed under
``saga_outbox`` (or as ``outbox_relay``), and no module imports a folder by its bare name, which
would load a second copy of it (and in a user's project, their own ``cdk``/``lambdas``)."""

from __future__ import annotations

import ast
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
#: repository folders that are never installed
NOT_INSTALLED = {"tests", "bench", "examples", "docs", "build", "dist", ".venv"}
MAPPED = {"cdk", "workflows", "lambdas", "local", "inspector", "ops"}


def _tracked(pattern: str) -> list[Path]:
    """The repository's own files (not build output, node_modules or CDK assets)."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", pattern],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [ROOT / line for line in out.splitlines() if (ROOT / line).is_file()]


def _folder_of(package: str) -> Path:
    mapping = SETUPTOOLS["package-dir"]
    parts = package.split(".")
    for i in range(len(parts), 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in mapping:
            return ROOT / mapping[prefix] / Path(*parts[i:])
    return ROOT / Path(*parts)


def test_every_package_folder_is_listed_and_every_listed_package_exists() -> None:
    listed = set(SETUPTOOLS["packages"])
    for package in listed:
        assert (_folder_of(package) / "__init__.py").is_file(), package
    folders = {
        init.parent
        for init in _tracked("*__init__.py")
        if not set(init.relative_to(ROOT).parts) & NOT_INSTALLED
    }
    assert folders == {_folder_of(p) for p in listed}


def test_the_mapped_folders_are_the_namespaces_subpackages() -> None:
    assert {k: v for k, v in SETUPTOOLS["package-dir"].items()} == {f"saga_outbox.{m}": m for m in MAPPED}


def _absolute_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_no_module_imports_a_folder_by_its_bare_name() -> None:
    offenders = []
    for path in _tracked("*.py"):
        rel = path.relative_to(ROOT)
        bare = _absolute_imports(path) & MAPPED
        if bare:
            offenders.append(f"{rel}: {sorted(bare)}")
    assert offenders == []


def test_the_package_names_no_domain() -> None:
    """Nothing installed names the orders example (its home is examples/, outside the wheel)."""
    offenders = []
    for package in SETUPTOOLS["packages"]:
        for path in _folder_of(package).glob("*.py"):
            text = path.read_text()
            for word in ("examples.orders", "OrderSaga", "OrderPlaced", "orders_schema"):
                if word in text:
                    offenders.append(f"{path.relative_to(ROOT)}: {word}")
    assert offenders == []
