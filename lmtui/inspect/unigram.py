"""How a Unigram model segments one word: the best-scoring path through its pieces, and the runner-up.

The replay follows the `tokenizers` library's Unigram (the one T5 tokenizer.json files and lmtui's
Marian tokenizer use): every vocabulary piece that starts at a character is an edge scored by its
log-probability; a character no single piece covers gets the unknown edge (lowest score minus 10);
the path with the highest total wins, and on a tie the one whose last piece starts earliest, as in
the library's forward pass. Adjacent unknown characters then fuse into one token, which byte fallback
replaces by `<0x..>` pieces when it can. Keeping the two best paths per position also gives the
runner-up, which shows how close the choice was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

UNKNOWN_PENALTY = 10.0  # tokenizers' K_UNK_PENALTY


@dataclass(frozen=True)
class ScoredPiece:
    piece: str  # the vocabulary entry, or the characters an unknown edge covers
    start: int  # character positions in the word
    end: int
    score: float  # the piece's log-probability (the unknown score for an unknown edge)
    unknown: bool


@dataclass(frozen=True)
class Segmentation:
    pieces: tuple[ScoredPiece, ...]
    score: float  # the sum of the pieces' scores, as the model adds them


@dataclass(frozen=True)
class UnigramTrace:
    """The chosen segmentation, the next best one (None when there is no other), the final tokens."""

    word: str
    best: Segmentation
    runner_up: Segmentation | None
    pieces: tuple[str, ...]  # the tokens' texts: pieces, fused unknown characters, or <0x..> bytes
    ids: tuple[int, ...]
    algorithm: str = "Unigram"


@dataclass(frozen=True)
class _Path:
    """One of the two best paths that end at a position, kept as a back-pointer."""

    score: float
    start: int  # where its last piece starts
    rank: int  # which of the paths ending at `start` it extends (0: the best)
    piece: ScoredPiece | None


class UnigramTracer:
    """A Unigram model's pieces, scores and options, ready to replay words."""

    def __init__(self, model: dict[str, Any]) -> None:
        vocab = [(str(piece), float(score)) for piece, score in model["vocab"]]
        self.ids = {piece: i for i, (piece, _) in enumerate(vocab)}  # a repeated piece keeps its last id
        self.scores = [score for _, score in vocab]
        self.unk_id: int | None = model.get("unk_id")
        self.byte_fallback = bool(model.get("byte_fallback"))
        self.unknown_score = min(self.scores, default=0.0) - UNKNOWN_PENALTY
        self.longest = max((len(piece) for piece in self.ids), default=0)

    def trace(self, word: str) -> UnigramTrace:
        paths = self._two_best(word)
        best = self._backtrack(paths, len(word), 0)
        runner_up = self._backtrack(paths, len(word), 1) if len(paths[len(word)]) > 1 else None
        pieces, ids = self._tokens(best)
        return UnigramTrace(word, best, runner_up, pieces, ids)

    def _edges(self, word: str, start: int) -> list[ScoredPiece]:
        """The pieces starting at `start`, shortest first, then the unknown edge if no piece is one character."""
        edges = []
        for end in range(start + 1, min(len(word), start + self.longest) + 1):
            piece = word[start:end]
            if piece in self.ids:
                edges.append(ScoredPiece(piece, start, end, self.scores[self.ids[piece]], unknown=False))
        if not any(e.end == start + 1 for e in edges):
            edges.append(ScoredPiece(word[start], start, start + 1, self.unknown_score, unknown=True))
        return edges

    def _two_best(self, word: str) -> list[list[_Path]]:
        """For each position, the two best paths ending there, best first; equal scores keep the earlier."""
        paths: list[list[_Path]] = [[] for _ in range(len(word) + 1)]
        paths[0] = [_Path(0.0, 0, 0, None)]
        for start in range(len(word)):
            for edge in self._edges(word, start):
                for rank, path in enumerate(paths[start]):
                    _offer(paths[edge.end], _Path(edge.score + path.score, start, rank, edge))
        return paths

    def _backtrack(self, paths: list[list[_Path]], end: int, rank: int) -> Segmentation:
        pieces = []
        total = paths[end][rank].score if end else 0.0
        while end > 0:
            path = paths[end][rank]
            assert path.piece is not None  # only the empty path at position 0 has none
            pieces.append(path.piece)
            end, rank = path.start, path.rank
        return Segmentation(tuple(reversed(pieces)), total)

    def _tokens(self, best: Segmentation) -> tuple[tuple[str, ...], tuple[int, ...]]:
        """Fuse adjacent unknown characters, then look each text up (byte fallback, else the unknown id)."""
        texts: list[str] = []
        after_unknown = False
        for piece in best.pieces:
            unknown = piece.unknown or (self.unk_id is not None and self.ids.get(piece.piece) == self.unk_id)
            if unknown and after_unknown:
                texts[-1] += piece.piece
            else:
                texts.append(piece.piece)
            after_unknown = unknown
        pieces: list[str] = []
        ids: list[int] = []
        for text in texts:
            found = self._lookup(text)
            pieces += [p for p, _ in found]
            ids += [i for _, i in found]
        return tuple(pieces), tuple(ids)

    def _lookup(self, text: str) -> list[tuple[str, int]]:
        if text in self.ids:
            return [(text, self.ids[text])]
        codes = [f"<0x{b:02X}>" for b in text.encode()]
        if self.byte_fallback and all(code in self.ids for code in codes):
            return [(code, self.ids[code]) for code in codes]
        if self.unk_id is None:
            raise ValueError(f"the Unigram model has no unknown token for {text!r}")
        return [(text, self.unk_id)]


def _offer(paths: list[_Path], new: _Path) -> None:
    """Keep the two best paths; a new path goes after those it only ties with (the model keeps the first)."""
    at = next((n for n, path in enumerate(paths) if new.score > path.score), len(paths))
    paths.insert(at, new)
    del paths[2:]
