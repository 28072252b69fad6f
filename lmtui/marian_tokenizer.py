"""Marian's tokenizer (source.spm, target.spm, vocab.json) as transformers' MarianTokenizer, without sentencepiece.

MarianTokenizer segments text with source.spm, then looks each piece up in vocab.json (a piece missing there
becomes <unk>), and appends </s>. The ids are vocab.json's, not the spm's, so the two can disagree in both
directions: vocab.json holds target-only pieces that source.spm must never produce, and source.spm may hold
pieces vocab.json lacks. So the `tokenizers` backend here is source.spm's own Unigram model (only the pieces
sentencepiece's lattice uses, with their scores, and the unknown node that sentencepiece adds for characters
no piece covers), and each produced token is mapped to vocab.json by its text afterwards. That text is the
piece, or, for an unknown node, the character(s) it covers, which MarianTokenizer also looks up in
vocab.json (a source-unknown character the target side knows keeps its id). A Unigram built on vocab.json's
order instead would have to carry target-only pieces, which sentencepiece cannot produce and which would
change both the lattice and the unknown score: not equal.

A target (`encode_target`, as `MarianTokenizer(text_target=...)`) is segmented the same way with target.spm,
and its pieces take their ids from target_vocab.json with separate_vocabs (else from vocab.json); special tokens,
typed or appended, keep their ids from vocab.json, because transformers matches them as added tokens first.

Decoding follows MarianTokenizer.decode: ids to pieces through vocab.json (target_vocab.json with
separate_vocabs), runs between special tokens turned to text as sentencepiece's decode_pieces does (with
target.spm when separate_vocabs, else source.spm, as transformers picks), ▁ to space, outer spaces stripped.

Known difference: the charsmap is applied by `tokenizers`' Precompiled normalizer, which works per grapheme
cluster where sentencepiece takes the longest match. Clusters of 6+ UTF-8 bytes that the charsmap would
recompose (a decomposed "e\u0301" followed by another combining mark) or whose charsmap match is a strict prefix
of the cluster ("\r\n" is one space, not two, which shows only with remove_extra_whitespaces off) can split
differently. A leading >>lang<< code is recognised at the start of the text only (transformers: of each stretch
between special tokens).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenizers import AddedToken, Regex, models, normalizers, processors
from tokenizers import Tokenizer as Backend

from lmtui.errors import LmtuiError
from lmtui.jsonfile import read_json_object
from lmtui.spm import ModelType, NormalizerSpec, PieceType, SpmModel, read_spm
from lmtui.tokenizer import Encoding, SpecialToken, SpecialTokens, Tokenizer, _clean_up_tokenization

SPACE = "\u2581"  # ▁, sentencepiece's visible space
FLT_MIN = 1.1754943508222875e-38  # sentencepiece starts its max score here, so a user-defined piece scores ~ -0.1


@dataclass(frozen=True)
class _Vocab:
    """vocab.json's ids as MarianTokenizer sees them, special tokens missing from it appended after."""

    source_ids: dict[str, int]
    target_ids: dict[str, int]  # piece -> id for targets (target_vocab.json with separate_vocabs)
    target_pieces: dict[int, str]  # id -> piece for decoding (target_vocab.json with separate_vocabs)
    source_pieces: dict[int, str]
    specials: dict[str, int]  # eos/unk/pad/additional special tokens
    unk_id: int
    target_unk_id: int


class MarianTokenizer(Tokenizer):
    """A Tokenizer whose backend segments with source.spm and whose ids come from vocab.json."""

    def __init__(self, backend: Backend, target_backend: Backend, special: SpecialTokens, vocab: _Vocab,
                 decode_spm: SpmModel, clean_up_spaces: bool) -> None:
        super().__init__(backend, special, clean_up_spaces)
        self._target_backend = target_backend  # segments with target.spm
        self._vocab = vocab
        self._special_pieces = {i: t for t, i in vocab.specials.items()}
        self._spm_types = {p.piece: p.type for p in decode_spm.pieces}
        self._spm = decode_spm
        charsmap = decode_spm.denormalizer.precompiled_charsmap
        self._denormalizer = normalizers.Precompiled(charsmap) if charsmap else None

    @property
    def vocab_size(self) -> int:
        return len(self._vocab.source_ids)

    def encode(self, text: str, add_special_tokens: bool = True) -> Encoding:
        """MarianTokenizer's ids; a leading >>lang<< code is looked up whole, as its remove_language_code does."""
        ids, offsets, special = self._encode(self.backend, self._vocab.source_ids, self._vocab.unk_id, text,
                                             add_special_tokens)
        pieces = tuple(self._vocab.source_pieces.get(i, "") for i in ids)
        return Encoding(tuple(ids), pieces, tuple(offsets), tuple(special))

    @property
    def target_backend(self) -> Backend:
        return self._target_backend

    def encode_target(self, text: str) -> Encoding:
        """MarianTokenizer(text_target=...): target.spm's pieces, the target vocabulary's ids."""
        ids, offsets, special = self._encode(self._target_backend, self._vocab.target_ids,
                                             self._vocab.target_unk_id, text, True)
        pieces = tuple(self.id_to_piece(i) or "" for i in ids)
        return Encoding(tuple(ids), pieces, tuple(offsets), tuple(special))

    def _encode(self, backend: Backend, vocab: dict[str, int], unk_id: int, text: str,
                add_special_tokens: bool) -> tuple[list[int], list[tuple[int, int]], list[bool]]:
        """Ids, offsets and special flags of one side; special tokens keep vocab.json's ids on both sides."""
        code = language_code(text)
        enc = backend.encode(text[len(code):], add_special_tokens=add_special_tokens)
        specials = self._vocab.specials
        ids = [specials[t] if m or t in specials else vocab.get(t, unk_id)
               for t, m in zip(enc.tokens, enc.special_tokens_mask)]
        # By text, not backend id: an unknown character shares <unk>'s id but is no special token.
        special = [bool(m) or t in specials for t, m in zip(enc.tokens, enc.special_tokens_mask)]
        shift = len(code)  # tokens the template appended keep their empty (0, 0) span
        offsets = [(s, e) if m else (s + shift, e + shift) for (s, e), m in zip(enc.offsets, enc.special_tokens_mask)]
        if code:  # one plain token spanning the code's characters
            ids.insert(0, vocab.get(code, unk_id))
            special.insert(0, False)
            offsets.insert(0, (0, shift))
        return ids, offsets, special

    def decode(self, ids: list[int] | tuple[int, ...], skip_special_tokens: bool = False) -> str:
        """MarianTokenizer.decode; ids outside the vocabulary (padded embeddings) are dropped, not an error."""
        skip = set(self._vocab.specials.values()) if skip_special_tokens else set()
        pieces = [p for p in (self.id_to_piece(i) for i in ids if i not in skip) if p is not None]
        text, run = "", []
        for piece in pieces:
            if piece in self._vocab.specials:  # special tokens bypass sentencepiece, each followed by a space
                text += self._decode_pieces(run) + piece + " "
                run = []
            else:
                run.append(piece)
        text = (text + self._decode_pieces(run)).replace(SPACE, " ").strip()
        return _clean_up_tokenization(text) if self._clean_up_spaces else text

    def id_to_piece(self, id: int) -> str | None:
        """Special tokens by their own ids (as transformers' added tokens), other ids through the target vocabulary."""
        return self._special_pieces.get(id) or self._vocab.target_pieces.get(id)

    def piece_to_id(self, piece: str) -> int | None:
        return self._vocab.source_ids.get(piece)

    def source_piece(self, id: int) -> str | None:
        return self._vocab.source_pieces.get(id)

    def _decode_pieces(self, pieces: list[str]) -> str:
        """sentencepiece's DecodePieces: controls vanish, <unk> shows as its surface, the first ▁ is dropped."""
        text, bos_ws, seen_ws = "", True, False
        normalizer = self._spm.normalizer
        consume = normalizer.add_dummy_prefix or normalizer.remove_extra_whitespaces
        for piece in pieces:
            bos_ws = bos_ws and not (seen_ws or text)
            kind = self._spm_types.get(piece)
            seen_ws = False
            if kind is None:  # not a piece of this model: kept as it is
                text += piece
            elif kind is PieceType.UNKNOWN:
                text += self._spm.unk_surface
            elif kind is not PieceType.CONTROL:
                if bos_ws and consume and piece.startswith(SPACE):
                    piece, seen_ws = piece[1:], not normalizer.remove_extra_whitespaces
                text += piece.replace(SPACE, " ")
        return self._denormalizer.normalize_str(text) if self._denormalizer else text


def load_marian_tokenizer(folder: Path, settings: dict[str, Any]) -> MarianTokenizer:
    """Build the tokenizer of a Marian folder (source.spm, optional target.spm, vocab.json)."""
    source = _supported_spm(folder / "source.spm")
    target = _supported_spm(folder / "target.spm") if (folder / "target.spm").is_file() else source
    separate = bool(settings.get("separate_vocabs"))
    names = {n: _text(settings.get(f"{n}_token"), d) for n, d in (("eos", "</s>"), ("unk", "<unk>"), ("pad", "<pad>"))}
    extras = settings.get("additional_special_tokens") or settings.get("extra_special_tokens") or []
    extras = [_text(e, "") for e in (extras.values() if isinstance(extras, dict) else extras)]
    vocab = _vocab(folder, separate, [*names.values(), *(e for e in extras if e)], names["unk"])
    special = SpecialTokens(**{n: SpecialToken(t, vocab.specials[t]) for n, t in names.items()})
    return MarianTokenizer(_backend(source, vocab, names), _backend(target, vocab, names), special, vocab,
                           target if separate else source,
                           clean_up_spaces=bool(settings.get("clean_up_tokenization_spaces")))


def _backend(spm: SpmModel, vocab: _Vocab, names: dict[str, str]) -> Backend:
    """One side's segmentation: the spm's lattice and normalizer, special tokens split out, </s> appended."""
    backend = Backend(_unigram(spm, names["unk"]))
    backend.normalizer = _normalizer(spm.normalizer)
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in vocab.specials])
    eos = names["eos"]
    backend.post_processor = processors.TemplateProcessing(
        single=f"$A:0 {eos}:0", pair=f"$A:0 $B:1 {eos}:1", special_tokens=[(eos, backend.token_to_id(eos))])
    return backend


def _supported_spm(path: Path) -> SpmModel:
    """Read an spm file and refuse what this reimplementation does not reproduce exactly."""
    model = read_spm(path)
    if model.model_type is not ModelType.UNIGRAM:
        raise LmtuiError(f"{path}: a SentencePiece {model.model_type.name} model; lmtui reads only Unigram ones")
    if model.byte_fallback or model.treat_whitespace_as_suffix or any(p.type is PieceType.BYTE for p in model.pieces):
        raise LmtuiError(f"{path}: byte fallback and suffix whitespace are not supported in SentencePiece models")
    return model


def _unigram(spm: SpmModel, unk: str) -> models.Unigram:
    """The pieces sentencepiece's lattice holds, with its scores; the unknown entry last.

    The unknown entry must never match text (sentencepiece's <unk> piece is not in its lattice; a full-width
    "＜unk＞" normalizes to "<unk>"), so its name ends in a space, which the normalizer has turned into ▁. Its
    name is never shown: tokens are mapped to vocab.json by their text, an unknown node's being what it covers.
    """
    lattice = [p for p in spm.pieces if p.type in (PieceType.NORMAL, PieceType.USER_DEFINED)]
    max_score = max([FLT_MIN, *(p.score for p in lattice if p.type is PieceType.NORMAL)])
    vocab = [(p.piece, p.score if p.type is PieceType.NORMAL else len(p.piece) * max_score - 0.1) for p in lattice]
    return models.Unigram([*vocab, (unk + " ", 0.0)], unk_id=len(vocab), byte_fallback=False)


def _normalizer(spec: NormalizerSpec) -> normalizers.Normalizer:
    """sentencepiece's Normalizer: charsmap, then drop outer and repeated spaces, dummy prefix, spaces to ▁."""
    steps: list[normalizers.Normalizer] = []
    if spec.precompiled_charsmap:
        steps.append(normalizers.Precompiled(spec.precompiled_charsmap))
    if spec.remove_extra_whitespaces:
        steps += [normalizers.Replace(Regex(" {2,}"), " "), normalizers.Replace(Regex(r"\A | \z"), "")]
    if spec.add_dummy_prefix:
        steps.append(normalizers.Prepend(" "))  # Prepend leaves an empty text empty, as sentencepiece does
    if spec.escape_whitespaces:
        steps.append(normalizers.Replace(" ", SPACE))
    return normalizers.Sequence(steps)


def _vocab(folder: Path, separate: bool, specials: list[str], unk: str) -> _Vocab:
    source = _read_vocab(folder / "vocab.json")
    if unk not in source:
        raise LmtuiError(f"{folder / 'vocab.json'}: the unknown token {unk!r} is not in the vocabulary")
    target = _read_vocab(folder / "target_vocab.json") if separate else source
    ids = dict(source)
    for token in specials:  # transformers gives special tokens missing from the vocabulary the next ids
        ids.setdefault(token, len(ids))
    return _Vocab(ids, target if separate else ids, {i: p for p, i in target.items()}, {i: p for p, i in ids.items()},
                  {t: ids[t] for t in specials}, source[unk], target.get(unk, source[unk]))


def _read_vocab(path: Path) -> dict[str, int]:
    raw = read_json_object(path, required=True)
    if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in raw.values()):
        raise LmtuiError(f"{path}: a vocabulary maps pieces to non-negative integer ids")
    return raw


def language_code(text: str) -> str:
    """A leading >>xx<< target-language code, which MarianTokenizer keeps out of sentencepiece."""
    end = text.find("<<") if text.startswith(">>") else -1
    return text[:end + 2] if end != -1 else ""


def _text(value: Any, default: str) -> str:
    """A token given as text or as an AddedToken dict {"content": ...}."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) and value else default
