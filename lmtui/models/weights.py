"""From checkpoint tensor names to a family's module names, checked against the config's shapes.

Every family keeps its modules named as its standard Hugging Face checkpoint names them, so the
table only has to say how other layouts differ: a missing root prefix (a bare `GPT2Model` or
`LlamaModel` save), old buffers that are not weights, and weights stored transposed (Conv1D).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lmtui.checkpoint import TensorEntry
from lmtui.errors import LmtuiError

LISTED = 5  # names listed per kind of problem before "and N more"
# TF-converted saves (bert-base-uncased) call LayerNorm's scale and shift gamma and beta;
# transformers renames them for every model on load, and so do we.
LEGACY_NORM = re.compile(r"LayerNorm\.(gamma|beta)$")


@dataclass(frozen=True)
class WeightTable:
    prefix: str  # our root module, e.g. "transformer."; checkpoints may omit it
    outside: tuple[str, ...] = ()  # our tensors that live outside that root, e.g. "lm_head.weight"
    ignored: re.Pattern[str] | None = None  # checkpoint tensors that are not weights
    transposed: re.Pattern[str] | None = None  # our tensors stored (in, out) in the checkpoint

    def our_name(self, name: str) -> str | None:
        name = LEGACY_NORM.sub(lambda m: "LayerNorm." + ("weight" if m[1] == "gamma" else "bias"), name)
        if self.ignored is not None and self.ignored.search(name):
            return None
        if name in self.outside or name.startswith(self.prefix):
            return name
        return self.prefix + name

    def is_transposed(self, our_name: str) -> bool:
        return self.transposed is not None and bool(self.transposed.search(our_name))


def match_weights(
    table: WeightTable,
    tensors: dict[str, TensorEntry],
    expected: dict[str, tuple[int, ...]],
    tied: dict[str, str],
) -> dict[str, str]:
    """Map checkpoint names to ours, or raise one error naming every missing, unexpected and
    mis-shaped tensor. A tied tensor (e.g. a stored copy of the shared embedding) is skipped."""
    plan: dict[str, str] = {}
    unexpected: list[str] = []
    mismatched: list[str] = []
    for name, entry in tensors.items():
        ours = table.our_name(name)
        if ours is None or ours in tied:
            continue
        if ours not in expected:
            unexpected.append(name)
            continue
        shape = entry.shape[::-1] if table.is_transposed(ours) else entry.shape
        if shape != expected[ours]:
            mismatched.append(f"{name} {list(shape)} (config needs {list(expected[ours])})")
        plan[name] = ours
    missing = sorted(set(expected) - set(tied) - set(plan.values()))
    problems = [
        _listed("missing", missing),
        _listed("unexpected", sorted(unexpected)),
        _listed("wrong shape", mismatched),
    ]
    problems = [problem for problem in problems if problem]
    if problems:
        raise LmtuiError("checkpoint does not match its config: " + "; ".join(problems))
    return plan


def _listed(label: str, names: list[str]) -> str:
    if not names:
        return ""
    more = f" and {len(names) - LISTED} more" if len(names) > LISTED else ""
    return f"{label} {', '.join(names[:LISTED])}{more}"
