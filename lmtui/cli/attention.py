"""`lmtui attention`: one head's attention map, or a summary of every head."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

import click

from lmtui.cli.common import emit, model_options, open_session, read_text

if TYPE_CHECKING:
    from lmtui.inspect.attention import AttentionMap, HeadSummary

SHADES = " ░▒▓█"  # weight 0 .. 1; a masked cell is drawn as MASKED, so "never looked" differs from "may not look"
MASKED = "·"
TOP_KEYS = 3


@click.command("attention")
@click.argument("text", required=False)
@model_options
@click.option("--layer", type=int, default=0, show_default=True, help="0-based; negative counts from the end.")
@click.option("--head", type=int, default=0, show_default=True, help="0-based; negative counts from the end.")
@click.option("--kind", type=click.Choice(["self", "encoder", "decoder", "cross"]), default=None,
              help="self for decoders and encoders; encoder, decoder or cross for encoder-decoders "
                   "(default: cross with --target, encoder without).")
@click.option("--target", default=None, help="Encoder-decoders: the decoder side, teacher forced.")
@click.option("--pad-to", type=click.IntRange(min=0), default=0, metavar="N",
              help="Pad the text to N tokens as a batch would (left for decoders), to see the padding mask.")
@click.option("--summary", is_flag=True, help="Every layer's and head's summary instead of one map.")
def attention(text: str | None, model: str | None, device: str, dtype: str, as_json: bool, layer: int, head: int,
              kind: str | None, target: str | None, pad_to: int, summary: bool) -> None:
    """Where one attention head looks: rows are queries, columns keys, each row sums to 1.

    Masked cells (future tokens, padding, keys past a sliding window) are reported as masked, drawn
    as "·"; a padding query's whole row is masked, as its output is never read.

    Examples: lmtui attention "The with statement" --layer -1 --head 2;
    lmtui attention -m weights/tiny-seq2seq "forty-two" --target "42" --kind cross --json
    """
    session = open_session(model, device, dtype)
    view = session.attention(read_text(text), target, pad_to)
    kind = kind or ("self" if session.kind != "encoder-decoder" else "cross" if target is not None else "encoder")
    if summary:
        heads = view.summaries(kind)
        data = {"kind": kind, "layers": view.layers(kind), "heads": view.heads(kind),
                "summaries": [asdict(h) for h in heads]}
        emit(data, as_json, render_summaries(kind, heads))
        return
    head_map = view.map(kind, layer, head)
    data = {"layer": head_map.layer, "head": head_map.head, "kind": kind, "queries": head_map.queries,
            "keys": head_map.keys, "weights": head_map.weights, "masked": head_map.masked}
    emit(data, as_json, render_map(head_map))


def render_map(head_map: AttentionMap) -> str:
    """Per query: its piece, a shaded strip over the keys, and the keys it weighs most."""
    width = max(len(piece) for piece in head_map.queries + head_map.keys)
    rows = [f"{head_map.kind} attention, layer {head_map.layer}, head {head_map.head}: "
            f"{len(head_map.queries)} queries x {len(head_map.keys)} keys ({SHADES[1:]} weight, {MASKED} masked)"]
    for offset, (piece, weights, masked) in enumerate(zip(head_map.queries, head_map.weights, head_map.masked)):
        strip = "".join(MASKED if hidden else _shade(w) for w, hidden in zip(weights, masked))
        best = sorted(range(len(weights)), key=lambda k: -weights[k])[:TOP_KEYS]
        top = "  ".join(f"{head_map.keys[k]}@{k} {weights[k]:.2f}" for k in best if not masked[k])
        rows.append(f"{head_map.first_query + offset:>4} {piece:<{width}} |{strip}|  {top}")
    return "\n".join(rows)


def _shade(weight: float) -> str:
    return SHADES[min(len(SHADES) - 1, round(weight * (len(SHADES) - 1)))]


def render_summaries(kind: str, heads: list[HeadSummary]) -> str:
    """A table: entropy in nats, then the mean weight on the first key, the previous key and itself."""
    rows = [f"{kind} attention heads: entropy (nats) and mean weight on the first, previous and own position",
            "layer head  entropy  first  previous  itself"]
    for h in heads:
        previous = f"{h.previous:8.3f}" if h.previous is not None else "       -"
        itself = f"{h.itself:7.3f}" if h.itself is not None else "      -"
        rows.append(f"{h.layer:>5} {h.head:>4} {h.entropy:>8.3f} {h.first:>6.3f} {previous}  {itself}")
    return "\n".join(rows)
