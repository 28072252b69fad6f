"""Beam search records as a tree. Pure functions over the plain step records (no Textual)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lmtui.decoding.records import BeamStep, Hypothesis


@dataclass(frozen=True)
class Node:
    """One hypothesis of one step, with the generated tokens it stands for and the beam it extends."""

    step: int
    hypothesis: Hypothesis
    tokens: tuple[int, ...]


def nodes_by_step(steps: list[BeamStep]) -> list[list[Node]]:
    """Every step's hypotheses with their tokens. A step's running hypotheses come first, in beam
    order, so a hypothesis' `parent` indexes the running ones of the step before."""
    running: list[tuple[int, ...]] = [()]
    table = []
    for step in steps:
        nodes = [Node(step.step, h, running[h.parent] + (h.token_id,)) for h in step.hypotheses
                 if h.parent < len(running)]
        table.append(nodes)
        running = [node.tokens for node in nodes if node.hypothesis.status == "running"]
    return table


@dataclass
class Branch:
    """A run of tokens shared by every hypothesis below it; `ends` are the hypotheses ending here."""

    tokens: tuple[int, ...] = ()
    children: list[Branch] = field(default_factory=list)
    ends: list[Node] = field(default_factory=list)


def survivor_tree(table: list[list[Node]]) -> Branch:
    """The tree of every finished hypothesis and of the beams still running at the last step, with
    shared beginnings merged; pruned hypotheses are left out (each step lists them)."""
    leaves = [node for nodes in table for node in nodes if node.hypothesis.status == "finished"]
    if table:
        leaves += [node for node in table[-1] if node.hypothesis.status == "running"]
    return _merge([(node.tokens, node) for node in leaves], ())


def _merge(paths: list[tuple[tuple[int, ...], Node]], tokens: tuple[int, ...]) -> Branch:
    """A branch for paths that all start with `tokens`' continuation; chains without a fork are merged."""
    branch = Branch(tokens)
    groups: dict[int, list[tuple[tuple[int, ...], Node]]] = {}
    for rest, node in paths:
        if rest:
            groups.setdefault(rest[0], []).append((rest[1:], node))
        else:
            branch.ends.append(node)
    for first, group in groups.items():
        child = _merge(group, (first,))
        while not child.ends and len(child.children) == 1:  # one way on: merge the chain
            only = child.children[0]
            child = Branch(child.tokens + only.tokens, only.children, only.ends)
        branch.children.append(child)
    return branch
