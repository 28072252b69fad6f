"""The Tokens view's detail: one token's id, piece, bytes and offsets, and the steps that built it —
BPE's merges for exactly this token, WordPiece's longest matches, Unigram's best segmentation and the
runner-up. Plain `Content` (no markup), so a piece such as "[/]" shows as it is."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.cells import cell_len
from textual.content import Content

from lmtui.inspect.merges import BpeTrace, Merge, WordPieceTrace
from lmtui.inspect.pieces import readable
from lmtui.inspect.unigram import Segmentation, UnigramTrace
from lmtui.tui.text import piece_label

if TYPE_CHECKING:  # lmtui.inspect.tokens loads `tokenizers`: the view imports it in its worker
    from lmtui.inspect.tokens import SplitToken, TokenSplit, Trace

MUTED = "$text-muted"
STRONG = "bold $accent"
MAX_STEPS = 40  # a SentencePiece BPE reads a whole sentence as one word: hundreds of merges
MAX_REJECTED = 4
MAX_BYTES = 16
PENDING = object()  # the trace is being computed


def token_detail(split: TokenSplit, token: SplitToken, where: str, trace: Trace | None | object,
                 width: int = 80) -> Content:
    """Everything about one token, then how its word was split (`trace` PENDING while it is computed);
    `width`: the cells there are, so a merge's result can be shown beside it only where it fits."""
    count = len(split.tokens)
    parts: list[Content] = [Content.assemble((token.display or "∅", STRONG),
                                             (f"  token #{token.index} of {count}{where}\n", MUTED))]
    parts += _field("id", str(token.id))
    parts += _field("piece", Content(token.piece), "  (the vocabulary's spelling)")
    parts += _field("bytes", _hex(token.bytes))
    parts += _field("characters", *_span(split.text, token))
    for note in _notes(split.text, token):
        parts += _field("", Content.styled(note, "$text-warning"))
    parts += _word(split, token)
    parts.append(Content("\n"))
    if token.word is None:
        parts.append(Content.styled("Special and added tokens are matched whole before the model splits the "
                                    "text into words: there are no steps to show.", MUTED))
    elif trace is PENDING:
        parts.append(Content.styled("Replaying the tokenizer on this word …", MUTED))
    else:
        parts += _trace(split, token, trace, width)  # type: ignore[arg-type]
    return Content.assemble(*parts)


def _field(name: str, *values: Content | str) -> list[Content]:
    return [Content.styled(f"{name:<11} ", MUTED), *(Content(v) if isinstance(v, str) else v for v in values),
            Content("\n")]


def _hex(data: tuple[int, ...]) -> str:
    shown = " ".join(f"{b:02x}" for b in data[:MAX_BYTES])
    return shown + (f" … ({len(data)} bytes)" if len(data) > MAX_BYTES else "")


def _span(text: str, token: SplitToken) -> tuple[Content | str, ...]:
    if token.start == token.end:
        return ("none", Content.styled("  (added by the tokenizer's template, not typed)", MUTED))
    typed = readable(text[token.start:token.end].encode())
    return (f"{token.start}:{token.end}  ", Content.styled(f"“{typed}”", "bold"))


def _notes(text: str, token: SplitToken) -> list[str]:
    notes = []
    if token.special:
        notes.append("special token: it frames the text (or was typed as one) rather than spelling it")
    if token.partial:
        notes.append("part of a character: its bytes are not whole UTF-8; the next tokens hold the rest")
    if token.unknown:
        notes.append(f"unknown token: the vocabulary has no piece for “{text[token.start:token.end]}”")
    return notes


def _word(split: TokenSplit, token: SplitToken) -> list[Content]:
    if token.word is None:
        return _field("word", Content.styled("none", MUTED))
    word = split.words[token.word]
    k, m = word.tokens.index(token.index), len(word.tokens)
    label = piece_label(split.kind, word.text)
    return _field("word", Content.styled(label, "bold"), Content.styled(
        f"  (chars {word.start}:{word.end}, token {k + 1} of {m})", MUTED))


def _trace(split: TokenSplit, token: SplitToken, trace: Trace | None, width: int) -> list[Content]:
    assert token.word is not None
    word = split.words[token.word]
    k = word.tokens.index(token.index)
    if isinstance(trace, BpeTrace):
        return _bpe(split.kind, trace, k if len(trace.pieces) == len(word.tokens) else None, width)
    if isinstance(trace, WordPieceTrace):
        return _wordpiece(trace, k)
    if isinstance(trace, UnigramTrace):
        return _unigram(split.kind, trace, k if len(trace.best.pieces) == len(word.tokens) else None)
    return [Content.styled("This tokenizer looks whole words up in its vocabulary: there are no steps.", MUTED)]


def _bpe(kind: str, trace: BpeTrace, k: int | None, room: int) -> list[Content]:
    """The merges that built piece k (all of the word's when its pieces do not line up with its tokens),
    each with the token's symbols after it where they fit in `room` cells."""
    if trace.whole_word:
        return [Content.styled("BPE: the word is in the vocabulary whole (ignore_merges): no merges.", MUTED)]
    start, end = trace.spans[k] if k is not None else (0, len(trace.initial))
    merges = trace.merges_for(k) if k is not None else trace.merges
    label = lambda piece: piece_label(kind, piece)  # noqa: E731
    title = f"How BPE built it: {len(merges)} merge{'s' if len(merges) != 1 else ''}, lowest rank first\n"
    if not merges:
        return [Content.styled(title, "bold"), Content.styled(
            f"{label(trace.pieces[k] if k is not None else trace.word)} is one of the starting symbols: "
            "nothing was merged into it.", MUTED)]
    spans = [(n, n + 1) for n in range(start, end)]
    steps = [f"{label(m.left)} + {label(m.right)} = {label(m.result)}" for m in merges[:MAX_STEPS]]
    width = max(cell_len(step) for step in steps)
    initial = _symbols(trace, spans, kind)
    beside = 13 + width + 3 + cell_len(initial) <= room  # the symbols after each merge, in a column of their own
    lines = [Content.styled(title, "bold"), *_step("start", " " * (width + 3) if beside else "", initial)]
    for merge, step in zip(merges, steps):
        spans = _merged(spans, merge)
        after = [" " * (width - cell_len(step)), " → ", _symbols(trace, spans, kind)] if beside else []
        lines += _step(f"rank {merge.rank}", step, *after)
    if len(merges) > MAX_STEPS:
        lines.append(Content.styled(f"… {len(merges) - MAX_STEPS} more merges\n", MUTED))
    if len(trace.pieces) > 1:
        lines.append(Content.styled(f"The word ends as {len(trace.pieces)} tokens: "
                                    f"{' '.join(label(p) for p in trace.pieces)}", MUTED))
    return lines


def _merged(spans: list[tuple[int, int]], merge: Merge) -> list[tuple[int, int]]:
    """The token's symbols after a merge: those inside the merge's span become one."""
    a, b = merge.span
    inside = [s for s in spans if a <= s[0] and s[1] <= b]
    if not inside:
        return spans
    at = spans.index(inside[0])
    return [*spans[:at], (a, b), *spans[at + len(inside):]]


def _symbols(trace: BpeTrace, spans: list[tuple[int, int]], kind: str) -> str:
    return " ".join(piece_label(kind, "".join(trace.initial[a:b])) for a, b in spans)


def _step(name: str, *values: str) -> list[Content]:
    return [Content.styled(f"  {name:<10} ", MUTED), *(Content(v) for v in values), Content("\n")]


def _wordpiece(trace: WordPieceTrace, k: int) -> list[Content]:
    title = Content.styled("How WordPiece built it: at each position, the longest vocabulary entry\n", "bold")
    if trace.unknown is not None:
        return [title, Content.styled(f"The whole word became {trace.pieces[0]}: {trace.unknown}.", "$text-warning")]
    match = trace.matches[k]
    tried = list(match.rejected[:MAX_REJECTED]) + ([f"… {len(match.rejected) - MAX_REJECTED} more"]
                                                  if len(match.rejected) > MAX_REJECTED else [])
    if not tried and (match.start, match.end) == (0, len(trace.word)):
        return [title, *_step("at 0", f"{match.piece}: the whole word is in the vocabulary")]
    lines = [title, *_step(f"at {match.start}", f"tried {' '.join(tried)} — not in the vocabulary")] if tried else [
        title]
    lines += _step("found" if tried else f"at {match.start}", f"{match.piece} (characters {match.start}:{match.end} "
                                                              f"of “{trace.word}”)")
    if len(trace.pieces) > 1:
        lines.append(Content.styled(f"The word ends as: {' '.join(trace.pieces)}", MUTED))
    return lines


def _unigram(kind: str, trace: UnigramTrace, k: int | None) -> list[Content]:
    lines = [Content.styled("How Unigram chose it: the split with the highest total log-probability\n", "bold")]
    lines += [Content.styled(f"  {'best':<10} ", MUTED), *_segmentation(kind, trace.best, k), Content("\n")]
    if trace.runner_up is not None:
        gap = trace.best.score - trace.runner_up.score
        lines += [Content.styled(f"  {'runner-up':<10} ", MUTED), *_segmentation(kind, trace.runner_up, None),
                  Content.styled(f"  ({gap:.3f} lower)\n", MUTED)]
    else:
        lines.append(Content.styled("  no other split: the word has one way through the vocabulary\n", MUTED))
    return lines


def _segmentation(kind: str, segmentation: Segmentation, k: int | None) -> list[Content]:
    parts: list[Content] = []
    for n, piece in enumerate(segmentation.pieces):
        if n:
            parts.append(Content.styled(" | ", MUTED))
        unknown = " (unknown)" if piece.unknown else ""
        parts += [Content.styled(piece_label(kind, piece.piece) + unknown, STRONG if n == k else "bold"),
                  Content.styled(f" {piece.score:.3f}", MUTED)]
    return [*parts, Content(f"  = {segmentation.score:.3f}")]
