"""`lmtui loss`: the teacher-forced loss of a text, token by token, with label smoothing."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import click

from lmtui.cli.common import emit, model_options, open_session, read_text

if TYPE_CHECKING:
    from lmtui.loss import LossResult

SCORED = {
    "decoder": "each token from its prefix",
    "encoder-decoder": "each target token given the source",
    "encoder": "pseudo-log-likelihood: each token masked in turn",
}
PIECE_WIDTH = 16


@click.command()
@click.argument("text", required=False)
@model_options
@click.option("-e", "--label-smoothing", type=float, default=0.0, show_default=True, metavar="FLOAT",
              help="ε in [0, 1), as torch.nn.functional.cross_entropy's label_smoothing.")
@click.option("--target", default=None, metavar="TEXT", help="Encoder-decoders: the decoder-side text to score.")
def loss(text: str | None, model: str | None, device: str, dtype: str, as_json: bool, label_smoothing: float,
         target: str | None) -> None:
    """Score TEXT (or stdin) token by token: cross-entropy with label smoothing, NLL, rank, alternatives.

    Decoders score each token after the first from its prefix; encoder-decoders score --target given
    TEXT as the source; encoders give the pseudo-log-likelihood (each token masked in turn).

    Example: lmtui loss "The quick brown fox" -e 0.1
    """
    from lmtui.loss import check_label_smoothing

    check_label_smoothing(label_smoothing)  # before the model loads
    prompt = read_text(text)
    result = open_session(model, device, dtype).loss(prompt, target, label_smoothing)
    emit(result_json(result), as_json, render_loss(result))


def result_json(result: LossResult) -> dict[str, Any]:
    """The whole result; a perplexity too large for a float is null (JSON has no infinity)."""
    data = asdict(result)
    data["perplexity"] = result.perplexity if math.isfinite(result.perplexity) else None
    return data


def render_loss(result: LossResult) -> str:
    """A row per scored token, then the means."""
    header = f"{'pos':>5}  {'piece':<{PIECE_WIDTH}} {'nll':>8} {'loss':>8} {'rank':>6}  top alternatives"
    rows = [
        f"{t.position:>5}  {_show(t.piece, t.id):<{PIECE_WIDTH}} {t.nll:>8.4f} {t.loss:>8.4f} {t.rank:>6}  "
        + "  ".join(f"{_show(a.piece, a.id)} {a.prob:.3f}" for a in t.alternatives)
        for t in result.tokens
    ]
    n = len(result.tokens)
    summary = (f"mean loss {result.mean_loss:.4f} (label smoothing {result.label_smoothing:g}), "
               f"mean nll {result.mean_nll:.4f}, perplexity {result.perplexity:.4g} "
               f"over {n} token{'s' if n != 1 else ''}")
    return "\n".join([f"scored: {SCORED.get(result.kind, result.kind)}", header, *rows, summary])


def _show(piece: str, id: int) -> str:
    """A piece as one cell: control characters escaped, long ones cut, an unknown id by its number."""
    if not piece:
        return f"[{id}]"
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in piece)
    return shown if len(shown) <= PIECE_WIDTH else shown[:PIECE_WIDTH - 1] + "…"
