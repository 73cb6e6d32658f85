"""A user's view, as a user has it: the wheel built from this repository, installed into a fresh
venv of a project outside the repository that has its own ``cdk/`` and ``lambdas/`` folders.

The project's files are the README's "Bring your own saga" code blocks, so the README is what
is tested. The project runs its saga with ``saga-outbox local run`` (success, and a failure of
the second step that compensates the first) and synthesizes its own CDK app built with
``SagaOutbox``, checked by cdk-nag (in the app) and cfn-lint.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.user_project, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BLOCK = re.compile(r"<!-- byo-file: (\S+) -->\n```(?:python|json)\n(.*?)```", re.S)


def readme_files() -> dict[str, str]:
    """``path -> content`` of every README block marked ``<!-- byo-file: PATH -->``."""
    return dict(BLOCK.findall(README.read_text()))


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (
        f"{' '.join(cmd)} exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done.stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("user")
    dist, venv, proj = base / "dist", base / "venv", base / "myshop-project"
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    have_uv = Path(uv).exists()
    if have_uv:
        _run([uv, "build", "--wheel", "--out-dir", str(dist), str(ROOT)], cwd=base)
    else:
        _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)], cwd=base)
    wheel = next(dist.glob("saga_outbox-*.whl"))
    # a fresh venv, nothing from the repository's; uv keeps this to seconds (pip: minutes)
    if have_uv:
        _run([uv, "venv", "-q", "--python", sys.executable, str(venv)], cwd=base)
        env = {**os.environ, "VIRTUAL_ENV": str(venv)}
        _run([uv, "pip", "install", "-q", f"{wheel}[local,cdk]"], cwd=base, env=env)
    else:
        _run([sys.executable, "-m", "venv", str(venv)], cwd=base)
        _run([str(venv / "bin" / "pip"), "install", "-q", f"{wheel}[local,cdk]"], cwd=base)
    files = readme_files()
    assert {"myshop/sagas.py", "cdk/app.py"} <= set(files), sorted(files)
    for rel, text in files.items():
        target = proj / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    # the user's own packages named like ours: they must win in their project
    for package in ("myshop", "cdk", "lambdas", "workflows"):
        (proj / package).mkdir(exist_ok=True)
        (proj / package / "__init__.py").write_text(f"OWNER = 'the user: {package}'\n")
    return {"venv": venv, "project": proj, "bin": venv / "bin"}


def _env(project: dict[str, Path]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{project['bin']}{os.pathsep}{env.get('PATH', '')}"
    env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
    env["JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION"] = "1"
    return env


def test_installed_wheel_adds_only_its_namespace(project) -> None:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "files = m.distribution('saga-outbox').files\n"
        "tops = sorted({f.parts[0] for f in files if not f.parts[0].endswith(('.dist-info', '..'))"
        " and f.parts[0] != 'bin'})\n"
        "import cdk, lambdas, workflows\n"
        "print(json.dumps({'tops': tops, 'owners': [cdk.OWNER, lambdas.OWNER, workflows.OWNER]}))\n"
    )
    out = json.loads(
        _run([str(project["bin"] / "python"), "-c", code], cwd=project["project"], env=_env(project))
    )
    assert out["tops"] == ["outbox_relay", "saga_outbox"]
    assert out["owners"] == ["the user: cdk", "the user: lambdas", "the user: workflows"]


def _local_run(project, payload: dict) -> dict:
    out = _run(
        [
            str(project["bin"] / "saga-outbox"),
            "local",
            "run",
            "--app",
            "myshop.sagas:app",
            "--event-type",
            "RoomRequested",
            "--payload",
            json.dumps(payload),
            "--json",
        ],
        cwd=project["project"],
        env=_env(project),
    )
    return json.loads(out)


def test_local_run_completes_the_saga(project) -> None:
    data = _local_run(project, {"room": "101", "card": "ok"})
    (saga,) = data["executions"]
    assert (saga["workflow"], saga["kind"], saga["status"], saga["outcome"]) == (
        "RoomSaga",
        "STANDARD",
        "SUCCEEDED",
        "completed",
    )
    assert saga["states"] == ["Start", "BookRoom", "ChargeCard", "MarkCompleted", "SagaCompleted"]


def test_local_run_compensates_the_first_step_when_the_second_fails(project) -> None:
    data = _local_run(project, {"room": "102", "card": "declined"})
    (saga,) = data["executions"]
    assert (saga["status"], saga["outcome"]) == ("SUCCEEDED", "compensated")
    assert saga["states"] == [
        "Start",
        "BookRoom",
        "ChargeCard",
        "ChargeCardFailed",  # the Choice that reads the error: a rejection undoes the steps before
        "CompensateBookRoom",
        "MarkCompensated",
        "SagaCompensated",
    ]


def test_the_projects_cdk_app_synthesizes_clean(project, tmp_path) -> None:
    outdir = tmp_path / "cdk.out"
    env = {
        **_env(project),
        "CDK_OUTDIR": str(outdir),
        # what `cdk synth` passes; skips the pip-built dependencies layer (no network in tests)
        "CDK_CONTEXT_JSON": json.dumps({"aws:cdk:bundling-stacks": []}),
    }
    done = subprocess.run(
        [str(project["bin"] / "python"), "-m", "cdk.app"],
        cwd=project["project"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = outdir / "validation-report.json"
    findings = json.loads(report.read_text()) if report.exists() else {}
    assert done.returncode == 0, (done.stderr[-4000:], findings)
    violations = [v for p in findings.get("pluginReports", []) for v in p.get("violations", [])]
    assert violations == []
    templates = sorted(outdir.glob("*.template.json"))
    assert [t.name for t in templates] == ["MyShop.template.json"]
    template = json.loads(templates[0].read_text())
    kinds = {r["Type"] for r in template["Resources"].values()}
    assert {"AWS::StepFunctions::StateMachine", "AWS::SQS::Queue", "AWS::Lambda::Function"} <= kinds
    apps = {
        r["Properties"]["Environment"]["Variables"].get("SAGA_OUTBOX_APP")
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function" and "Environment" in r.get("Properties", {})
    }
    assert "myshop.sagas:app" in apps
    # the user's code asset holds the project's package, not site-packages
    assets = [p for p in outdir.glob("asset.*") if (p / "myshop" / "sagas.py").is_file()]
    assert assets and not any((p / "saga_outbox").exists() for p in assets)

    from saga_outbox.cdk.checks import run_cfn_lint

    assert run_cfn_lint(templates, regions=["eu-west-1"]) == []
