"""The parts of a compiled saga, read off its structure as :mod:`saga_outbox.workflows.compiler`
emits it (see that module's layout), never off edge counts or state names:

- the *happy path*: the ``Next`` chain from ``StartAt`` (``Start``, the steps, the
  ``on_success`` hook, ``MarkCompleted``, ``SagaCompleted``);
- *helpers* of a happy-path step: the Choice its ``Catch`` leads to (``<Step>Failed``, which
  tells a rejection from an unknown outcome) and the Pass states reached only from there
  (``<Pivot>Unresolved``); each belongs to exactly one step;
- the *compensation chain*: every other state that leads to or follows ``MarkCompensated``
  (the compensations, the ``on_compensated`` hook, ``MarkCompensated``, ``SagaCompensated``);
- ``CompensationFailed``, which every failure nothing can undo reaches.

A helper Choice's branch is ``"unknown"`` when it leads to its step's own compensation (the
``Payload.step`` of a ``kind: "compensation"`` Task) or to another helper of that step (the
pivot's ``Unresolved``), and ``"rejected"`` otherwise: only a rejection skips the step's own undo.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from saga_outbox.workflows.compiler import COMPENSATED_STATE, COMPENSATION_FAILED, MARK_COMPENSATED

__all__ = ["CHAIN", "FAILED", "HAPPY", "HELPER", "SagaStructure", "saga_structure"]

# the columns, left to right: a step's helpers sit between it and the chain they lead into
HAPPY, HELPER, CHAIN, FAILED = 0, 1, 2, 3
_END_STATES = frozenset({MARK_COMPENSATED, COMPENSATED_STATE, COMPENSATION_FAILED})


@dataclass(frozen=True, slots=True)
class SagaStructure:
    column: Mapping[str, int]  # HAPPY | HELPER | CHAIN | FAILED
    owner: Mapping[str, str]  # helper -> the happy-path step it belongs to
    #: (Choice helper, target) -> "rejected" | "unknown"
    branch: Mapping[tuple[str, str], str]


def _happy_path(start_at: str, states: Mapping[str, Mapping[str, Any]]) -> list[str]:
    path: list[str] = []
    name: Any = start_at
    while isinstance(name, str) and name in states and name not in path:
        path.append(name)
        name = states[name].get("Next")
    return path


def _undoes(state: Mapping[str, Any]) -> str | None:
    params = state.get("Parameters")
    payload = params.get("Payload") if isinstance(params, Mapping) else None
    if isinstance(payload, Mapping) and payload.get("kind") == "compensation":
        step = payload.get("step")
        return step if isinstance(step, str) else None
    return None


def saga_structure(
    start_at: str, states: Mapping[str, Mapping[str, Any]], edges: Sequence[tuple[str, str, str]]
) -> SagaStructure:
    """Columns, helper owners and Choice branches of a compiled saga (see the module docstring)."""
    happy = _happy_path(start_at, states)
    on_happy = set(happy)
    sources: dict[str, set[str]] = {}
    for source, target, _ in edges:
        sources.setdefault(target, set()).add(source)

    def may_help(name: str) -> bool:
        # helpers are the compiler's Choice/Pass glue; Tasks and the end states never are
        st = states[name]
        return st.get("Type") in ("Choice", "Pass") and name not in on_happy and name not in _END_STATES

    owner: dict[str, str] = {}
    for step in happy:
        catches = [t for s, t, kind in edges if s == step and kind == "catch"]
        # the step's own Choice: reached from its Catch and from nowhere else
        frontier = [t for t in catches if states[t].get("Type") == "Choice" and may_help(t)]
        frontier = [t for t in frontier if sources[t] == {step}]
        while frontier:
            name = frontier.pop()
            if name in owner:
                continue
            owner[name] = step
            for source, target, _ in edges:
                # a Pass reached only from this step's helpers (shared ones belong to the chain)
                mine = all(s == step or owner.get(s) == step for s in sources.get(target, ()))
                if source == name and may_help(target) and mine:
                    frontier.append(target)

    column: dict[str, int] = {}
    for name in states:
        if name in on_happy:
            column[name] = HAPPY
        elif name in owner:
            column[name] = HELPER
        elif name == COMPENSATION_FAILED:
            column[name] = FAILED
        else:
            column[name] = CHAIN

    branch: dict[tuple[str, str], str] = {}
    for source, target, _ in edges:
        if source in owner and states[source].get("Type") == "Choice":
            step = owner[source]
            own_undo = _undoes(states[target]) == step
            branch[(source, target)] = "unknown" if own_undo or owner.get(target) == step else "rejected"
    return SagaStructure(column=column, owner=owner, branch=branch)
