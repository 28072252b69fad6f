"""How BPE and WordPiece build one word's tokens, step by step, replayed from the tokenizer's own tables.

Both replays follow the `tokenizers` library's algorithms exactly (BPE: `merge_word` then `merge_all`;
WordPiece: greedy longest match), so the pieces they end with are the pieces the tokenizer produces
for that word; the tests check this word for word. They read the model's parameters from the
serialized backend, not from files, so a tokenizer built in memory is traced the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NO_MERGE = 1 << 62  # larger than any rank: the pair has no merge


@dataclass(frozen=True)
class Merge:
    """One BPE step: the adjacent pair with the lowest rank (leftmost on a tie) becomes `result`."""

    rank: int  # the merge's line in the tokenizer's merges list, 0 first
    left: str
    right: str
    result: str
    position: int  # index of `left` in the pieces before this step
    span: tuple[int, int]  # the initial symbols `result` covers, [start, end) into BpeTrace.initial
    pieces: tuple[str, ...]  # the word's pieces after this step


@dataclass(frozen=True)
class BpeTrace:
    """A word's way through BPE: its starting symbols, every merge in the order applied, the final pieces.

    `initial` holds the word's characters (for byte-level BPE, the byte alphabet's characters), or
    `<0x..>` byte pieces for a character outside the vocabulary with byte fallback, or the unknown token.
    """

    word: str
    initial: tuple[str, ...]
    merges: tuple[Merge, ...]
    pieces: tuple[str, ...]
    ids: tuple[int, ...]
    spans: tuple[tuple[int, int], ...]  # the initial symbols each final piece covers
    whole_word: bool  # ignore_merges: the word itself is in the vocabulary and is taken as one piece
    algorithm: str = "BPE"

    def merges_for(self, piece: int) -> tuple[Merge, ...]:
        """The merges that built final piece `piece` (an index into `pieces`), in the order they were applied.

        A word's merges interleave across its pieces (rank order is global to the word); this is the part
        the app shows for one selected token.
        """
        start, end = self.spans[piece]
        return tuple(m for m in self.merges if start <= m.span[0] and m.span[1] <= end)


@dataclass(frozen=True)
class Match:
    """One WordPiece step: at `start`, the longest vocabulary entry that begins there."""

    start: int  # character position in the word
    end: int
    piece: str | None  # the entry found ("##"-prefixed after the first), None when no entry fits
    rejected: tuple[str, ...]  # the longer candidates tried first, longest first, not in the vocabulary


@dataclass(frozen=True)
class WordPieceTrace:
    """Greedy longest-match-first; when one position has no entry the whole word becomes the unknown token."""

    word: str
    matches: tuple[Match, ...]
    pieces: tuple[str, ...]
    ids: tuple[int, ...]
    unknown: str | None  # why the word became the unknown token, None when it was split
    algorithm: str = "WordPiece"


class BpeTracer:
    """A BPE model's vocabulary, merges and options, ready to replay words."""

    def __init__(self, model: dict[str, Any]) -> None:
        self.vocab: dict[str, int] = model["vocab"]
        self.pieces = {i: piece for piece, i in self.vocab.items()}
        self.unk: str | None = model.get("unk_token")
        self.prefix: str = model.get("continuing_subword_prefix") or ""
        self.suffix: str = model.get("end_of_word_suffix") or ""
        self.fuse_unk = bool(model.get("fuse_unk"))
        self.byte_fallback = bool(model.get("byte_fallback"))
        self.ignore_merges = bool(model.get("ignore_merges"))
        self.merges = self._merge_table(model.get("merges") or [])

    def _merge_table(self, merges: list[Any]) -> dict[tuple[int, int], tuple[int, int]]:
        """(left id, right id) -> (rank, result id); the result drops the right side's continuing prefix."""
        cut = len(self.prefix.encode())
        table: dict[tuple[int, int], tuple[int, int]] = {}
        for rank, merge in enumerate(merges):
            left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
            result = left + right.encode()[cut:].decode()
            if left in self.vocab and right in self.vocab and result in self.vocab:
                table[self.vocab[left], self.vocab[right]] = (rank, self.vocab[result])
        return table

    def trace(self, word: str) -> BpeTrace:
        if self.ignore_merges and word in self.vocab:
            return BpeTrace(word, (word,), (), (word,), (self.vocab[word],), ((0, 1),), whole_word=True)
        ids = self._symbols(word)
        initial = tuple(self.pieces[i] for i in ids)
        spans = [(n, n + 1) for n in range(len(ids))]
        merges = []
        ranks = [self._rank(a, b) for a, b in zip(ids, ids[1:])]
        while ranks and (best := min(ranks)) != NO_MERGE:
            pos = ranks.index(best)  # the leftmost pair of that rank
            left, right = ids[pos], ids[pos + 1]
            ids[pos:pos + 2] = [self.merges[left, right][1]]
            spans[pos:pos + 2] = [(spans[pos][0], spans[pos + 1][1])]
            del ranks[pos]
            if pos > 0:
                ranks[pos - 1] = self._rank(ids[pos - 1], ids[pos])
            if pos < len(ranks):
                ranks[pos] = self._rank(ids[pos], ids[pos + 1])
            merges.append(Merge(best, self.pieces[left], self.pieces[right], self.pieces[ids[pos]], pos, spans[pos],
                                tuple(self.pieces[i] for i in ids)))
        pieces = tuple(self.pieces[i] for i in ids)
        return BpeTrace(word, initial, tuple(merges), pieces, tuple(ids), tuple(spans), whole_word=False)

    def _rank(self, left: int, right: int) -> int:
        return self.merges.get((left, right), (NO_MERGE, 0))[0]

    def _symbols(self, word: str) -> list[int]:
        """The ids BPE starts from: each character (prefixed/suffixed as configured), its bytes, or unknown."""
        ids: list[int] = []
        unknown: int | None = None  # a pending unknown token, held back so that neighbours can fuse into it
        for n, char in enumerate(word):
            symbol = (self.prefix if n else "") + char + (self.suffix if n == len(word) - 1 else "")
            if symbol in self.vocab:
                ids += [unknown] if unknown is not None else []
                ids.append(self.vocab[symbol])
                unknown = None
            elif self.byte_fallback and all(f"<0x{b:02X}>" in self.vocab for b in symbol.encode()):
                ids += [self.vocab[f"<0x{b:02X}>"] for b in symbol.encode()]  # a held unknown waits, as in tokenizers
            elif self.unk is not None and self.unk in self.vocab:
                if unknown is not None and not self.fuse_unk:
                    ids.append(unknown)
                unknown = self.vocab[self.unk]
            # without an unknown token, a character the vocabulary lacks is dropped
        return ids + ([unknown] if unknown is not None else [])


class WordPieceTracer:
    """A WordPiece model's vocabulary and options, ready to replay words."""

    def __init__(self, model: dict[str, Any]) -> None:
        self.vocab: dict[str, int] = model["vocab"]
        self.unk: str = model.get("unk_token") or "[UNK]"
        self.prefix: str = model.get("continuing_subword_prefix") or ""
        self.max_chars = int(model.get("max_input_chars_per_word") or 100)

    def trace(self, word: str) -> WordPieceTrace:
        if len(word) > self.max_chars:
            reason = f"longer than max_input_chars_per_word ({len(word)} > {self.max_chars} characters)"
            return self._unknown(word, (), reason)
        matches, start = [], 0
        while start < len(word):
            match = self._longest(word, start)
            matches.append(match)
            if match.piece is None:
                return self._unknown(word, tuple(matches), f"no vocabulary entry at character {start}")
            start = match.end
        pieces = tuple(m.piece for m in matches if m.piece is not None)
        return WordPieceTrace(word, tuple(matches), pieces, tuple(self.vocab[p] for p in pieces), None)

    def _longest(self, word: str, start: int) -> Match:
        rejected = []
        for end in range(len(word), start, -1):
            candidate = (self.prefix if start else "") + word[start:end]
            if candidate in self.vocab:
                return Match(start, end, candidate, tuple(rejected))
            rejected.append(candidate)
        return Match(start, start, None, tuple(rejected))

    def _unknown(self, word: str, matches: tuple[Match, ...], reason: str) -> WordPieceTrace:
        return WordPieceTrace(word, matches, (self.unk,), (self.vocab[self.unk],), reason)
