"""The words around the Attention view's grids: each side's token labels, the status line, what the cell
under the cursor holds, and the overview's values, legend and head readout. The overview colours a
summary from its lowest value over all heads to its highest, so the heads that differ stand out even
where every head is middling; the legend gives the two ends."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.content import Content

from lmtui.inspect.inputs import TokenInputs
from lmtui.tui.text import piece_label
from lmtui.tui.views.inspecting import Source
from lmtui.tui.widgets.heatmap import legend

if TYPE_CHECKING:
    from lmtui.inspect.attention import AttentionView, HeadSummary
    from lmtui.session import Session
    from lmtui.tui.widgets.heatmap import Heatmap, Values

PAD = 3  # padding tokens added by the padding demo (p)
Sides = dict[str, tuple[list[str], list[str]]]  # kind -> (query labels, key labels)

SUMMARIES = ("entropy", "first", "previous", "itself")  # self-attention; cross has the first two
MEANING = {
    "entropy": "how spread out (nats): low = looks at few keys",
    "first": "mean weight on the first token",
    "previous": "mean weight on the token just before",
    "itself": "mean weight on the query's own token",
}
Grid = tuple[list[str], list[str], dict[int, "Values"], dict[int, list[str]]]


def summary_grid(summaries: list[HeadSummary], name: str) -> Grid:
    """Rows (layers), columns (heads), colour values (lowest head 0, highest 1) and the cells' numbers."""
    layers = 1 + max(s.layer for s in summaries)
    heads = 1 + max(s.head for s in summaries)
    low, high = summary_range(summaries, name)
    values: dict[int, Values] = {layer: [None] * heads for layer in range(layers)}
    texts: dict[int, list[str]] = {layer: [""] * heads for layer in range(layers)}
    for summary in summaries:
        value = getattr(summary, name)
        if value is not None:
            values[summary.layer][summary.head] = (value - low) / (high - low) if high > low else 0.5
            texts[summary.layer][summary.head] = f"{value:.2f}"
    return [f"layer {n}" for n in range(layers)], [str(n) for n in range(heads)], values, texts


def summary_range(summaries: list[HeadSummary], name: str) -> tuple[float, float]:
    known = [value for s in summaries if (value := getattr(s, name)) is not None]
    return (min(known), max(known)) if known else (0.0, 1.0)


def summary_legend(summaries: list[HeadSummary], name: str) -> Content:
    low, high = summary_range(summaries, name)
    return Content.assemble(legend(f"{low:.2f}", f"{high:.2f}", width=8, masked=False), "  ", (name, "bold"), ": ",
                            MEANING[name])


def describe_head(summary: HeadSummary) -> Content:
    parts: list[str | tuple[str, str]] = [("layer ", "$text-muted"), f"{summary.layer}", (" head ", "$text-muted"),
                                          f"{summary.head}", ("  entropy ", "$text-muted"), f"{summary.entropy:.3f}",
                                          ("  first ", "$text-muted"), f"{summary.first:.3f}"]
    if summary.previous is not None:
        parts += [("  previous ", "$text-muted"), f"{summary.previous:.3f}"]
    if summary.itself is not None:
        parts += [("  itself ", "$text-muted"), f"{summary.itself:.3f}"]
    return Content.assemble(*parts)


def describe_cell(grid: Heatmap, kind: str, loaded: bool, decoding: bool) -> Content:
    """The cell under the map's cursor: its weight first (so a narrow screen still shows it), the query
    (and, when `decoding`, the token it predicts: → “x”), the key, and the row's largest; or why it is masked."""
    if not grid.row_labels:
        return Content("")
    row, column = grid.cursor
    values = grid.values.get(row) if loaded else None
    where = Content.assemble(("query ", "$text-muted"), f"{row} “", (grid.row_labels[row], "bold"), "”")
    if decoding and row + 1 < len(grid.row_labels):  # a decoder's query reads one token, predicts the next
        where += Content.assemble((" (→ “", "$text-muted"), grid.row_labels[row + 1], ("”)", "$text-muted"))
    where += Content.assemble(("  key ", "$text-muted"), f"{column} “", (grid.column_labels[column], "bold"), "”")
    if values is None:
        return Content.styled("…  ", "$text-muted") + where
    value = values[column]
    if value is None:
        later = decoding and kind != "cross" and column > row
        why = "a later token, which this query may not see" if later else "padding, which no query reads"
        return where + Content.styled(f"  masked: {why}", "$text-warning")
    best = max((n for n, v in enumerate(values) if v is not None), key=lambda n: values[n] or 0.0)
    return Content.assemble((f"{value:.4f}", "bold $accent"), "  ", where, ("  row max “", "$text-muted"),
                            (grid.column_labels[best], "bold"), ("” ", "$text-muted"), f"{values[best] or 0.0:.4f}")


def status_line(kind: str, layer: tuple[int, int], head: tuple[int, int], source: str, summary: str | None,
                note: str = "") -> Content:
    """Which head of which kind (`layer`, `head`: (index, count)), or in the overview which summary colours it."""
    parts: list[str | tuple[str, str]] = [(kind, "bold $accent")]
    if summary is not None:
        parts += [(f"  all {layer[1]} × {head[1]} heads by ", "$text-muted"), (summary, "bold"),
                  ("  (s: another, enter: open)", "$text-muted")]
    else:
        parts += [("  layer ", "$text-muted"), str(layer[0]), (f" of {layer[1]}", "$text-muted"),
                  ("  head ", "$text-muted"), str(head[0]), (f" of {head[1]}", "$text-muted")]
    parts.append((f"  · {source}" + (f"  {note}" if note else ""), "$text-muted"))
    return Content.assemble(*parts)


def record(session: Session, source: Source, padded: bool) -> tuple[AttentionView, Sides]:
    """Run the model on the source (padded by PAD tokens for the padding demo) and label each kind's sides."""
    text, target = source.args
    pad_to = 0
    if padded:
        inputs = text if isinstance(text, TokenInputs) else session.inputs(text, target)
        pad_to = len(inputs.ids) + PAD
    view = session.attention(text, target, pad_to)
    kind = session.tokenizer.kind

    def keys(of: str) -> list[str]:  # one row is the least a map can be asked for (an empty window fails)
        return [piece_label(kind, piece) for piece in view.map(of, 0, 0, rows=(0, 1)).keys]

    return view, {name: (keys("decoder" if name == "cross" else name), keys(name)) for name in view.kinds}
