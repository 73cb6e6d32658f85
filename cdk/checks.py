"""``python -m saga_outbox.cdk.checks``: synthesize offline, report cdk-nag and cfn-lint findings.

Exit status 0 only if cdk-nag (AwsSolutions; errors *and* warnings, acknowledged ones excepted)
and cfn-lint (errors and warnings, minus :data:`CFN_LINT_IGNORED`) find nothing.
The tests in ``tests/infra`` use :func:`synthesize` and :func:`run_cfn_lint` too.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

__all__ = ["CFN_LINT_IGNORED", "NagFinding", "SynthResult", "main", "run_cfn_lint", "synthesize"]

# cfn-lint rules ignored, each with its reason.
CFN_LINT_IGNORED: Mapping[str, str] = {
    "W3005": "CDK emits explicit DependsOn next to Ref/GetAtt (role before function, cluster before "
    "proxy target group); redundant, harmless, and not ours to change.",
}


@dataclass(frozen=True)
class NagFinding:
    severity: str
    rule: str
    path: str
    description: str

    def __str__(self) -> str:
        return f"[{self.severity}] {self.rule} {self.path}: {self.description}"


@dataclass
class SynthResult:
    outdir: Path
    stack_name: str
    region: str
    seconds: float
    templates: list[Path] = field(default_factory=list)
    nag_findings: list[NagFinding] = field(default_factory=list)

    def template(self, stack_name: str | None = None) -> dict[str, Any]:
        path = self.outdir / f"{stack_name or self.stack_name}.template.json"
        return json.loads(path.read_text())


def synthesize(
    outdir: str | Path,
    context: Mapping[str, Any] | None = None,
    *,
    build: Callable[..., tuple[Any, Any]],
) -> SynthResult:
    """Synthesize the app (offline: no asset bundling) with cdk-nag registered, and collect the
    policy-validation findings instead of raising on them.

    ``build(outdir=..., context=...) -> (App, Stack)`` builds the app to check (with cdk-nag
    registered, e.g. by :func:`saga_outbox.cdk.nag.add_nag_checks`)."""
    from saga_outbox.cdk.context import OFFLINE_CONTEXT

    started = time.perf_counter()
    outdir = Path(outdir)
    app, stack = build(outdir=str(outdir), context={**OFFLINE_CONTEXT, **(context or {})})
    try:
        app.synth()
    except RuntimeError as exc:
        if "ValidationFailed" not in str(exc) or not (outdir / "validation-report.json").exists():
            raise
    findings = _read_validation_report(outdir / "validation-report.json")
    return SynthResult(
        outdir=outdir,
        stack_name=stack.stack_name,
        region=stack.region,
        seconds=time.perf_counter() - started,
        templates=sorted(outdir.glob("*.template.json")),
        nag_findings=findings,
    )


def _read_validation_report(path: Path) -> list[NagFinding]:
    if not path.exists():
        return []
    report = json.loads(path.read_text())
    findings = []
    for plugin in report.get("pluginReports", []):
        for violation in plugin.get("violations", []):
            for construct in violation.get("violatingConstructs", []) or [{}]:
                findings.append(
                    NagFinding(
                        severity=str(violation.get("severity", "error")),
                        rule=str(violation.get("ruleName", "?")),
                        path=str(construct.get("constructPath", "?")),
                        description=str(violation.get("description", "")).strip(),
                    )
                )
    return findings


def run_cfn_lint(templates: Sequence[Path], *, regions: Sequence[str]) -> list[str]:
    """cfn-lint every template; returns the findings as ``"<rule> <file>:<line> <message>"``."""
    from cfnlint.api import ManualArgs, lint_file

    config = ManualArgs(regions=list(regions), ignore_checks=list(CFN_LINT_IGNORED))
    findings = []
    for template in templates:
        for match in lint_file(template, config=config):
            findings.append(f"{match.rule.id} {template.name}:{match.linenumber} {match.message}")
    return findings


def _load_build(spec: str) -> Callable[..., tuple[Any, Any]]:
    import importlib

    module, _, attr = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # run from the project root, like `cdk synth`
    build = getattr(importlib.import_module(module), attr)
    if not callable(build):
        raise TypeError(f"{spec} is not a function (outdir=..., context=...) -> (App, Stack)")
    return build  # type: ignore[no-any-return]


def main(argv: Sequence[str] | None = None) -> int:
    """Synthesize into a temporary directory, print a summary, exit non-zero on any finding.

    ``python -m saga_outbox.cdk.checks MODULE:BUILD [context_key=value ...]``: ``BUILD`` is a
    function ``(outdir=..., context=...) -> (App, Stack)``."""
    args = list(argv if argv is not None else sys.argv[1:])
    usage = "usage: python -m saga_outbox.cdk.checks MODULE:BUILD [context_key=value ...]"
    if not args or "=" in args[0] or ":" not in args[0]:
        print(f"{usage}; e.g. myshop.infra:build_app", file=sys.stderr)
        return 2
    build = _load_build(args.pop(0))
    context: dict[str, Any] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep:
            print(f"{usage}; bad argument {arg!r}", file=sys.stderr)
            return 2
        context[key] = value
    with tempfile.TemporaryDirectory(prefix="saga-outbox-cdk-") as outdir:
        result = synthesize(outdir, context, build=build)
        lint_started = time.perf_counter()
        lint = run_cfn_lint(result.templates, regions=[result.region])
        lint_seconds = time.perf_counter() - lint_started
    for finding in result.nag_findings:
        print(f"cdk-nag  {finding}")
    for line in lint:
        print(f"cfn-lint {line}")
    print(
        f"saga_outbox.cdk.checks: {len(result.templates)} template(s), synth {result.seconds:.1f}s, "
        f"cfn-lint {lint_seconds:.1f}s: {len(result.nag_findings)} cdk-nag finding(s), "
        f"{len(lint)} cfn-lint finding(s)"
    )
    return 1 if result.nag_findings or lint else 0


if __name__ == "__main__":
    raise SystemExit(main())
