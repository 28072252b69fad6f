"""The Loss view's detail for one token: its loss taken apart (how ε mixes the NLL with the uniform
term), the model's top choices there, and the smoothed target q next to the model's p, so the effect
of label smoothing can be read off one token."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from textual.content import Content

from lmtui.tui.text import bar, percent

if TYPE_CHECKING:
    from lmtui.loss import LossResult, TokenLoss

MUTED = "$text-muted"
NAME = 12  # cells for a token's label in the tables


def token_detail(result: LossResult, index: int, label: str, name: Callable[[int], str], width: int) -> Content:
    """`index` into result.tokens; `label`: the token as the strip shows it; `name`: a piece as it reads."""
    token = result.tokens[index]
    bars = max(4, min(20, (width - NAME - 24) // 2))
    parts = [Content.assemble((label, "bold $accent"), (f"  position {token.position}", MUTED),
                              ("  p ", MUTED), percent(token.prob).strip(), ("  rank ", MUTED), str(token.rank), "\n")]
    parts += [_formula(result.label_smoothing, token), Content("\n\n")]
    parts.append(Content.styled("The model's top choices here\n", "bold"))
    for alternative in token.alternatives:
        chosen = alternative.id == token.id
        parts += [_name(name(alternative.piece), chosen),
                  Content.styled(bar(alternative.prob, bars).ljust(bars), "$accent"),
                  Content(f" {percent(alternative.prob)}\n")]
    parts += [Content("\n"), *_target(result, index, name, bars)]
    return Content.assemble(*parts)


def _formula(eps: float, token: TokenLoss) -> Content:
    if eps == 0:
        return Content.assemble(("loss ", MUTED), f"{token.loss:.4f}", (" = nll = −log p", MUTED))
    return Content.assemble(("loss ", MUTED), f"{token.loss:.4f}", (" = (1 − ε)·nll + ε·uniform\n", MUTED),
                            (" " * len(f"loss {token.loss:.4f}"), MUTED), (" = ", MUTED),
                            f"{1 - eps:g} × {token.nll:.4f} + {eps:g} × {token.uniform_nll:.4f}",
                            ("\nuniform: −log p averaged over every id, what ε mixes in", MUTED))


def _target(result: LossResult, index: int, name: Callable[[int], str], bars: int) -> list[Content]:
    """q next to p: the true token, the model's other top choices, and everything else together."""
    target = result.smoothed_target(index)
    eps, vocab = result.label_smoothing, result.vocab_size
    spread = f"ε = {eps:g} spreads {eps:.0%} evenly over all {vocab} ids" if eps else "ε = 0: all of q on the answer"
    lines = [Content.assemble(("What the loss compares p with: the target q", "bold"), (f"  ({spread})\n", MUTED)),
             Content.styled(f"{'':<{NAME}} {'model p':<{bars + 8}} target q\n", MUTED)]
    for n, entry in enumerate(target.entries):
        lines += [_name(name(entry.piece), n == 0), *_pair(entry.model_prob, entry.target_prob, bars)]
    rest = max(0.0, 1.0 - sum(entry.model_prob for entry in target.entries))
    lines += [Content.styled(f"{f'{target.others} others':<{NAME}} ", MUTED), *_pair(rest, target.others *
                                                                                    target.other_prob, bars)]
    if eps:
        lines.append(Content.styled(f"{'':<{NAME}} {'':<{bars + 8}} ({percent(target.other_prob).strip()} each)\n",
                                    MUTED))
    return lines


def _pair(p: float, q: float, bars: int) -> list[Content]:
    return [Content.styled(bar(p, bars).ljust(bars), "$accent"), Content(f" {percent(p)}  "),
            Content.styled(bar(q, bars).ljust(bars), "$success"), Content(f" {percent(q)}\n")]


def _name(label: str, chosen: bool) -> Content:
    mark = " ✓" if chosen else ""
    shown = label[:NAME - len(mark)] + mark
    return Content.styled(f"{shown:<{NAME}} ", "bold" if chosen else "")
