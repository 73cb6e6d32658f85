"""Context every synthesis shares: the recommended feature flags of a new CDK project (read
from a ``cdk.json``) and the offline context the checks and tests synthesize with."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = ["OFFLINE_CONTEXT", "feature_flags"]

#: skips asset bundling (the pip-built dependencies layer) so a synth needs no network
OFFLINE_CONTEXT: Mapping[str, Any] = MappingProxyType({"aws:cdk:bundling-stacks": []})


def feature_flags(cdk_json: str | Path) -> Mapping[str, Any]:
    """The ``context`` of a ``cdk.json`` (where ``cdk init`` writes the recommended flags): the
    CDK CLI passes it to the app itself, and reading the same file lets tests and checks that
    synthesize without the CLI build the same template. Empty when the file does not exist."""
    path = Path(cdk_json)
    if not path.is_file():
        return MappingProxyType({})
    return MappingProxyType(dict(json.loads(path.read_text(encoding="utf-8")).get("context", {})))
