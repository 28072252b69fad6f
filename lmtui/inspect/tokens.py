"""How a text became tokens: ids, readable pieces, bytes, character offsets, and the words behind them.

The ids, pieces, offsets and special flags are the tokenizer's own (`Tokenizer.encode`, equal to
transformers). On top of that this finds the words the model read: the tokenizer's backend is
copied once with a pre-tokenizer step that only records the splits (after added tokens are cut out,
the text normalized and pre-tokenized), so a word is exactly the string the BPE/WordPiece/Unigram
model received (`Ġworld`, `▁hello`) and `trace_word` can replay how that model split it.
Plain data only and no torch: the app shows token splits before the model has loaded.
"""

from __future__ import annotations

import json
import threading
import weakref
from dataclasses import dataclass
from typing import Any

from tokenizers import PreTokenizedString, pre_tokenizers
from tokenizers import Tokenizer as Backend

from lmtui.inspect.merges import BpeTrace, BpeTracer, WordPieceTrace, WordPieceTracer
from lmtui.inspect.pieces import PieceForm, readable, whole_characters
from lmtui.inspect.unigram import UnigramTrace, UnigramTracer
from lmtui.marian_tokenizer import MarianTokenizer, language_code
from lmtui.tokenizer import Encoding, Tokenizer

Trace = BpeTrace | WordPieceTrace | UnigramTrace


@dataclass(frozen=True)
class SplitToken:
    """One token as the app shows it when selected."""

    index: int
    id: int
    piece: str  # the vocabulary entry ("Ġworld", "▁hello", "##lo", "<0xE4>")
    display: str  # readable: ␣ for a space, <E4> for a byte that is not a whole character, "##" kept
    start: int  # character offsets into the text; (0, 0) for tokens the template added
    end: int
    special: bool
    bytes: tuple[int, ...]  # what the piece stands for: a space for Ġ and ▁, the byte of <0xE4>
    partial: bool  # the bytes are not whole UTF-8 characters (part of a Chinese character or an emoji)
    unknown: bool  # the model's unknown token, standing for text it has no piece for (see start:end)
    word: int | None  # index into TokenSplit.words; None for special and added tokens, which skip the model


@dataclass(frozen=True)
class Word:
    """A stretch of text the model tokenized on its own, as the model read it (normalized, pre-tokenized)."""

    text: str  # e.g. "Ġworld" for byte-level BPE, "hello" after BERT's lower-casing
    start: int  # character offsets into the original text
    end: int
    tokens: tuple[int, ...]  # indexes into TokenSplit.tokens


@dataclass(frozen=True)
class TokenSplit:
    text: str
    kind: str  # Tokenizer.kind: "byte-level BPE", "BPE", "WordPiece", "Unigram", ...
    tokens: tuple[SplitToken, ...]
    words: tuple[Word, ...]


def split_text(tokenizer: Tokenizer, text: str, target: bool = False) -> TokenSplit:
    """The tokens of `text` as the tokenizer encodes it (special tokens included), each tied to its word.
    `target`: split it as an encoder-decoder's decoder-side text (Marian's own target vocabulary)."""
    enc = tokenizer.encode_target(text) if target else tokenizer.encode(text)
    inspector = _inspector(tokenizer, target)
    shift, seen = _backend_view(tokenizer, text)
    words, token_words = _words(*inspector.record(seen), shift, len(enc.ids))
    unk = tokenizer.special.unk.id if tokenizer.special.unk is not None else None
    tokens = tuple(_token(inspector.form, enc, i, token_words[i], words, unk) for i in range(len(enc.ids)))
    return TokenSplit(text, tokenizer.kind, tokens, words)


def _words(splits: list[tuple[str, tuple[int, int], Any]], word_ids: list[int | None], shift: int,
           count: int) -> tuple[tuple[Word, ...], list[int | None]]:
    """The model's words and each of the `count` tokens' word, from the recorded splits and token word ids.

    A split that already holds a token is an added token, cut out before the model: not a word. Tokens
    the backend never saw (Marian's >>lang<< code) come first and `shift` characters are theirs.
    """
    lead = count - len(word_ids)
    if lead < 0:
        raise RuntimeError("the tokenizer's copy produced more tokens than the tokenizer")
    number = {n: w for w, n in enumerate(n for n, (_, _, added) in enumerate(splits) if added is None)}
    token_words = [None] * lead + [number.get(n) if n is not None else None for n in word_ids]
    members: dict[int, list[int]] = {}
    for i, w in enumerate(token_words):
        if w is not None:
            members.setdefault(w, []).append(i)
    words = tuple(Word(piece, start + shift, end + shift, tuple(members.get(number[n], ())))
                  for n, (piece, (start, end), _) in enumerate(splits) if n in number)
    return words, token_words


def _token(form: PieceForm, enc: Encoding, i: int, word: int | None, words: tuple[Word, ...],
           unk: int | None) -> SplitToken:
    if word is None:  # special and added tokens: their text, as typed or as the template adds it
        data = enc.pieces[i].encode()
        display = readable(data)
    else:
        members = words[word].tokens
        data, display = form.read(enc.pieces[i], first=i == members[0], last=i == members[-1])
    start, end = enc.offsets[i]
    return SplitToken(i, enc.ids[i], enc.pieces[i], display, start, end, enc.special[i], tuple(data),
                      not whole_characters(data), word is not None and enc.ids[i] == unk, word)


def trace_word(tokenizer: Tokenizer, word: str, target: bool = False) -> Trace | None:
    """Replay the model on one word as it read it (`Word.text`); None for models without steps (WordLevel)."""
    tracer = _inspector(tokenizer, target).tracer
    return tracer.trace(word) if tracer is not None else None


def trace(tokenizer: Tokenizer, text: str, token_index: int, target: bool = False) -> Trace | None:
    """The steps that built the word holding token `token_index`; None for special and added tokens."""
    split = split_text(tokenizer, text, target)
    word = split.tokens[token_index].word
    return trace_word(tokenizer, split.words[word].text, target) if word is not None else None


class _Recorder:
    """A last pre-tokenizer step that changes nothing and keeps the splits the model is about to read."""

    def __init__(self) -> None:
        self.splits: list[tuple[str, tuple[int, int], Any]] = []

    def pre_tokenize(self, pretok: PreTokenizedString) -> None:
        self.splits = pretok.get_splits(offset_referential="original", offset_type="char")


class _Inspector:
    """Per tokenizer and side, built once: the recording copy of its backend, its piece form and its tracer."""

    def __init__(self, tokenizer: Tokenizer, backend: Backend) -> None:
        serialized = backend.to_str()
        model = json.loads(serialized)["model"]
        self.backend = Backend.from_str(serialized)
        self.recorder = _Recorder()
        steps = [self.backend.pre_tokenizer] if self.backend.pre_tokenizer is not None else []
        recording = pre_tokenizers.PreTokenizer.custom(self.recorder)
        self.backend.pre_tokenizer = pre_tokenizers.Sequence([*steps, recording])
        self.lock = threading.Lock()
        kind = model.get("type")
        tracers = {"BPE": BpeTracer, "WordPiece": WordPieceTracer, "Unigram": UnigramTracer}
        self.tracer: BpeTracer | WordPieceTracer | UnigramTracer | None = (
            tracers[kind](model) if kind in tracers else None)
        byte_level = tokenizer.kind == "byte-level BPE"
        self.form = PieceForm(byte_level=byte_level, byte_fallback=bool(model.get("byte_fallback")),
                              spaces=kind in ("BPE", "Unigram") and not byte_level,
                              prefix=model.get("continuing_subword_prefix") or "",
                              suffix=model.get("end_of_word_suffix") or "")

    def record(self, text: str) -> tuple[list[tuple[str, tuple[int, int], Any]], list[int | None]]:
        """The splits the backend's model read for `text`, and each token's split index (None: template)."""
        with self.lock:
            self.recorder.splits = []  # an empty text may never reach the pre-tokenizer
            word_ids = self.backend.encode(text).word_ids
            return self.recorder.splits, word_ids


_INSPECTORS: weakref.WeakKeyDictionary[Tokenizer, dict[bool, _Inspector]] = weakref.WeakKeyDictionary()
_INSPECTORS_LOCK = threading.Lock()


def _inspector(tokenizer: Tokenizer, target: bool = False) -> _Inspector:
    """The source side's inspector, or (`target`) the decoder side's, which differs only for Marian."""
    with _INSPECTORS_LOCK:
        sides = _INSPECTORS.setdefault(tokenizer, {})
        if target not in sides:
            sides[target] = _Inspector(tokenizer, tokenizer.target_backend if target else tokenizer.backend)
        return sides[target]


def _backend_view(tokenizer: Tokenizer, text: str) -> tuple[int, str]:
    """Where the backend's input starts in `text`, and that input: Marian keeps a >>lang<< code out of it."""
    if isinstance(tokenizer, MarianTokenizer):
        code = language_code(text)
        return len(code), text[len(code):]
    return 0, text
