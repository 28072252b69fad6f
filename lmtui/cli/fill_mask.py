"""`lmtui fill-mask`: an encoder's guesses for each mask token in a text."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

import click

from lmtui.cli.common import emit, model_options, open_session, read_text

if TYPE_CHECKING:
    from lmtui.masked import MaskPrediction


@click.command("fill-mask")
@click.argument("text", required=False)
@model_options
@click.option("--top-k", type=click.IntRange(min=1), default=5, show_default=True, help="Candidates per mask.")
def fill_mask(text: str | None, model: str | None, device: str, dtype: str, as_json: bool, top_k: int) -> None:
    """Predict the token behind each mask token in TEXT (or stdin) with an encoder's MLM head.

    Type the checkpoint's own mask token: [MASK] for BERT and DistilBERT, <mask> for RoBERTa.
    Without -m/--model this opens the bundled encoder, weights/tiny-bert.

    Example: lmtui fill-mask "Return [MASK] if the object is callable, False otherwise."
    """
    from lmtui.checkpoint import DEFAULT_ENCODER, model_or_default

    prompt = read_text(text)
    masks = open_session(str(model_or_default(model, DEFAULT_ENCODER)), device, dtype).fill_mask(prompt, top_k)
    emit({"masks": [asdict(mask) for mask in masks]}, as_json, render_masks(masks))


def render_masks(masks: list[MaskPrediction]) -> str:
    """One block per mask: its token position, then probability, decoded text and vocabulary piece."""
    blocks = []
    for mask in masks:
        rows = [f"mask at token {mask.position}:"]
        rows += [f"  {c.prob:.4f}  {c.text!r:<16} {c.piece} (id {c.id})" for c in mask.candidates]
        blocks.append("\n".join(rows))
    return "\n\n".join(blocks)
