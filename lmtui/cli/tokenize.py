"""`lmtui tokenize`: how a text splits into tokens and, with --trace, how the tokenizer built each word.

Only the tokenizer is loaded (no model, no torch), so this answers at once even for a large checkpoint.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import click
from rich.cells import cell_len

from lmtui.cli.common import emit, model_options, read_text
from lmtui.inspect.merges import BpeTrace, WordPieceTrace
from lmtui.inspect.pieces import readable
from lmtui.inspect.unigram import Segmentation, UnigramTrace

if TYPE_CHECKING:
    from lmtui.inspect.tokens import TokenSplit, Trace, Word
    from lmtui.tokenizer import Tokenizer

SNAPSHOT_SYMBOLS = 24  # longer words (a SentencePiece BPE reads the whole text as one) list merges without snapshots


@click.command()
@click.argument("text", required=False)
@model_options
@click.option("--trace", "--merges", "with_trace", is_flag=True,
              help="Also show how each word was split: BPE merges in rank order, WordPiece's longest matches, "
                   "Unigram's best and runner-up segmentations.")
def tokenize(text: str | None, model: str | None, device: str, dtype: str, as_json: bool, with_trace: bool) -> None:
    """Split TEXT (or stdin) into tokens: ids, pieces, character offsets, special tokens, bytes.

    Only the tokenizer is read (--device and --dtype do not matter here). Pieces are shown readably:
    ␣ for a space (GPT-2's Ġ, SentencePiece's ▁), <E4> for a byte that is only part of a character.

    Example: lmtui tokenize "Hello 世界" --trace
    """
    from lmtui.inspect.tokens import split_text, trace_word  # here: `lmtui --help` need not load tokenizers

    prompt = read_text(text)
    tokenizer = open_tokenizer(model)
    split = split_text(tokenizer, prompt)
    traces = [trace_word(tokenizer, word.text) for word in split.words] if with_trace else None
    emit(split_json(split, traces), as_json, render_split(split, traces))


def open_tokenizer(model: str | None) -> Tokenizer:
    """The checkpoint's tokenizer alone; a folder with only tokenizer files is enough."""
    from lmtui.checkpoint import model_or_default, resolve_folder
    from lmtui.tokenizer import load_tokenizer

    return load_tokenizer(resolve_folder(model_or_default(model)))


def split_json(split: TokenSplit, traces: list[Trace | None] | None) -> dict[str, Any]:
    data = asdict(split)
    if traces is not None:
        for word, word_trace in zip(data["words"], traces):
            word["trace"] = asdict(word_trace) if word_trace is not None else None
    return data


def render_split(split: TokenSplit, traces: list[Trace | None] | None) -> str:
    """A row per token (index, id, piece, how it reads, character span, notes), then each word's trace."""
    rows = [("#", "id", "piece", "reads", "chars", "")]
    for token in split.tokens:
        note = "unknown" if token.unknown else "special" if token.special else ""
        if token.partial:
            note = "partial UTF-8: " + " ".join(f"{b:02x}" for b in token.bytes)
        rows.append((str(token.index), str(token.id), _cell(token.piece), token.display,
                     f"{token.start}:{token.end}", note))
    count = len(split.tokens)
    lines = [f"{count} token{'s' if count != 1 else ''} ({split.kind})", *_table(rows, right={0, 1})]
    for n, word_trace in enumerate(traces or []):
        lines += ["", *_render_trace(n, split.words[n], split.text, word_trace)]
    return "\n".join(lines)


def _table(rows: list[tuple[str, ...]], right: set[int]) -> list[str]:
    """Columns padded by terminal cells, so wide (CJK, emoji) pieces keep the table straight."""
    widths = [max(cell_len(row[c]) for row in rows) for c in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [(" " * (w - cell_len(v)) + v) if c in right else (v + " " * (w - cell_len(v)))
                 for c, (v, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    return lines


def _cell(piece: str) -> str:
    """A vocabulary piece on one line: spaces and control characters made visible."""
    return readable(piece.encode())


def _pieces(pieces: tuple[str, ...]) -> str:
    return " ".join(_cell(p) for p in pieces)


def _render_trace(n: int, word: Word, text: str, word_trace: Trace | None) -> list[str]:
    head = f"word {n}: {_cell(word.text)}  (chars {word.start}:{word.end}, {_cell(text[word.start:word.end])})"
    if isinstance(word_trace, BpeTrace):
        return [head, *_bpe_lines(word_trace)]
    if isinstance(word_trace, WordPieceTrace):
        return [head, *_wordpiece_lines(word_trace)]
    if isinstance(word_trace, UnigramTrace):
        return [head, *_unigram_lines(word_trace)]
    return [head, "  (this tokenizer looks whole words up; there are no steps)"]


def _bpe_lines(word_trace: BpeTrace) -> list[str]:
    if word_trace.whole_word:
        return [f"  in the vocabulary as a whole word (ignore_merges): {_pieces(word_trace.pieces)}"]
    lines = [f"  {'start':<12}{_pieces(word_trace.initial)}"]
    short = len(word_trace.initial) <= SNAPSHOT_SYMBOLS
    for merge in word_trace.merges:
        step = f"{_cell(merge.left)} + {_cell(merge.right)} = {_cell(merge.result)}"
        lines.append(f"  {f'rank {merge.rank}':<12}{step}" + (f"  ->  {_pieces(merge.pieces)}" if short else ""))
    return [*lines, f"  {'pieces':<12}{_pieces(word_trace.pieces)}"]


def _wordpiece_lines(word_trace: WordPieceTrace) -> list[str]:
    lines = []
    for match in word_trace.matches:
        tried = "".join(f"{_cell(r)}? " for r in match.rejected)
        found = _cell(match.piece) if match.piece is not None else "nothing"
        lines.append(f"  at {match.start:<3} {tried}-> {found}")
    if word_trace.unknown is not None:
        lines.append(f"  unknown: {word_trace.unknown}")
    return [*lines, f"  pieces  {_pieces(word_trace.pieces)}"]


def _unigram_lines(word_trace: UnigramTrace) -> list[str]:
    lines = [f"  best       {_segmentation(word_trace.best)}"]
    if word_trace.runner_up is not None:
        lines.append(f"  runner-up  {_segmentation(word_trace.runner_up)}")
    return [*lines, f"  pieces     {_pieces(word_trace.pieces)}"]


def _segmentation(segmentation: Segmentation) -> str:
    parts = [f"{_cell(p.piece)}{' (unknown)' if p.unknown else ''} {p.score:.4f}" for p in segmentation.pieces]
    return f"{' | '.join(parts)}  = {segmentation.score:.4f}"
