"""lmtui.decoding.text: streamed text joins to the full decode exactly, and stop strings are found on time.

Tokenizers are trained here on English, Chinese and emoji with small vocabularies, so that some characters
only exist as several byte tokens (byte-level BPE) or <0x..> pieces (SentencePiece-style byte fallback).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable

import pytest
import torch
from tokenizers import Tokenizer as Backend
from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers

from lmtui.decoding.search import token_search
from lmtui.decoding.settings import GenerationSettings
from lmtui.decoding.text import REPLACEMENT, TextStream, stop_check, truncate_at_stop
from lmtui.tokenizer import SpecialTokens, Tokenizer

ENGLISH = ("The llama is a domesticated South American camelid. Don't you think it's strange? I'd say we've "
           "seen stranger things. Hello world! Numbers like 42 and 3.14 show up too. Café naïve résumé.\n")
OTHER = "你好，世界。我喜欢羊驼。 I ❤️ 🦙 llamas and 🐪 camels.\n"
CORPUS = (ENGLISH * 3 + OTHER) * 3
CHINESE, EMOJI = "你好，世界。我喜欢羊驼。", "I ❤️ 🦙 llamas 🐪"
TEXTS = ["Hello world! The llamas don't jump, it's 3.14 .", CHINESE, EMOJI]
KINDS = ["byte-level", "byte-fallback", "wordpiece", "unigram"]
SPECIAL = {"byte-level": ("<|endoftext|>", "<|endoftext|>"), "byte-fallback": ("<s>", "</s>"),
           "wordpiece": ("[CLS]", "[SEP]"), "unigram": ("<pad>", "</s>")}


def _byte_level() -> Tokenizer:
    backend = Backend(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator([CORPUS], trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    return Tokenizer(backend, SpecialTokens())


def _byte_fallback() -> Tokenizer:
    """Llama's pipeline: ▁ for spaces, <0x..> pieces for characters outside the vocabulary."""
    backend = Backend(models.BPE(byte_fallback=True, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(" ", 1, 0)])
    pieces = [f"<0x{i:02X}>" for i in range(256)]
    alphabet = len(set(ENGLISH))  # English characters only: Chinese and emoji are left to byte pieces
    backend.train_from_iterator([CORPUS], trainers.BpeTrainer(
        vocab_size=400, limit_alphabet=alphabet, special_tokens=["<unk>", "<s>", "</s>", *pieces], show_progress=False))
    data = json.loads(backend.to_str())  # byte pieces are plain vocabulary, as in Llama, not special tokens
    data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] not in pieces]
    return Tokenizer(Backend.from_str(json.dumps(data)), SpecialTokens())


def _wordpiece() -> Tokenizer:
    """BERT's pipeline, with the clean_up_tokenization that rewrites " ." and " ' " after the fact."""
    backend = Backend(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece(prefix="##")
    backend.train_from_iterator([CORPUS], trainers.WordPieceTrainer(
        vocab_size=200, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"], show_progress=False))
    return Tokenizer(backend, SpecialTokens(), clean_up_spaces=True)


def _unigram() -> Tokenizer:
    """T5's shape: Unigram with a Metaspace decoder, clean-up on."""
    backend = Backend(models.Unigram())
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    backend.train_from_iterator([CORPUS], trainers.UnigramTrainer(
        vocab_size=150, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>", show_progress=False))
    return Tokenizer(backend, SpecialTokens(), clean_up_spaces=True)


@pytest.fixture(scope="module")
def tokenizers() -> dict[str, Tokenizer]:
    return {"byte-level": _byte_level(), "byte-fallback": _byte_fallback(), "wordpiece": _wordpiece(),
            "unigram": _unigram()}


def _stream(decode: Callable[..., str], ids: list[int], skip: bool = False) -> list[str]:
    """Push every id; the last piece is finish(). Checks that each step's text is already certain."""
    stream, pieces = TextStream(decode, skip_special_tokens=skip), []
    for n, token_id in enumerate(ids, 1):
        pieces.append(stream.push(token_id))
        assert decode(ids[:n], skip_special_tokens=skip).startswith("".join(pieces))
    pieces.append(stream.finish())
    assert stream.finish() == ""
    return pieces


def _assert_streams_exactly(tok: Tokenizer, ids: list[int], skip: bool = False) -> list[str]:
    pieces = _stream(tok.decode, ids, skip)
    full = tok.decode(ids, skip_special_tokens=skip)
    assert "".join(pieces) == full
    assert REPLACEMENT in full or not any(REPLACEMENT in piece for piece in pieces)
    return pieces


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("text", TEXTS)
def test_streamed_text_is_the_decoded_text(tokenizers: dict[str, Tokenizer], kind: str, text: str) -> None:
    tok = tokenizers[kind]
    ids = list(tok.encode(text).ids)
    if kind in ("byte-level", "byte-fallback") and text != TEXTS[0]:
        assert any(REPLACEMENT in tok.decode([i]) for i in ids), "no character is split: the test proves nothing"
    pieces = _assert_streams_exactly(tok, ids)
    if kind == "byte-fallback" and text == CHINESE:  # one run of <0x..> pieces: open until the sequence ends
        assert "".join(pieces[:-1]) == ""
    else:
        assert len("".join(pieces[:-1])) >= len(pieces[-1])  # most of it streams before finish()


@pytest.mark.parametrize("kind", KINDS)
def test_special_tokens_kept_or_skipped(tokenizers: dict[str, Tokenizer], kind: str) -> None:
    tok = tokenizers[kind]
    first, last = (tok.piece_to_id(piece) for piece in SPECIAL[kind])
    for text in TEXTS:
        ids = [first, *tok.encode(text).ids[:9], last, *tok.encode(text).ids[9:], last]
        for skip in (False, True):
            _assert_streams_exactly(tok, ids, skip)


@pytest.mark.parametrize("kind", KINDS)
def test_random_ids_stream_exactly(tokenizers: dict[str, Tokenizer], kind: str) -> None:
    tok, rng = tokenizers[kind], random.Random(1234)
    short = [i for i in range(tok.vocab_size) if len(tok.decode([i])) <= 1]  # bytes, single characters
    broken = 0
    for trial in range(150):
        pool = short if trial % 2 else range(tok.vocab_size)
        ids = [rng.choice(pool) for _ in range(rng.randint(0, 40))]
        _assert_streams_exactly(tok, ids, skip=trial % 3 == 0)
        broken += REPLACEMENT in tok.decode(ids)
    if kind in ("byte-level", "byte-fallback"):
        assert broken > 20  # invalid byte sequences really were streamed


def test_late_invalid_byte_revokes_a_whole_byte_fallback_run(tokenizers: dict[str, Tokenizer]) -> None:
    tok = tokenizers["byte-fallback"]
    byte = {h: tok.piece_to_id(f"<0x{h:02X}>") for h in (0xE4, 0xBD, 0xA0, 0x41, 0xFF)}
    nihao = [byte[0xE4], byte[0xBD], byte[0xA0]]
    assert tok.decode(nihao) == "你" and tok.decode([*nihao, byte[0xFF]]) == REPLACEMENT * 4
    stream = TextStream(tok.decode)
    assert [stream.push(i) for i in [*nihao, byte[0x41]]] == ["", "", "", ""]  # the run is still open
    assert stream.push(byte[0xFF]) == "" and stream.finish() == REPLACEMENT * 5
    word = tok.encode("llama", add_special_tokens=False).ids
    assert "".join(_assert_streams_exactly(tok, [*nihao, *word])) == "你 llama"  # a word ends the run


@pytest.mark.parametrize("kind", ["byte-level", "byte-fallback"])
def test_finish_flushes_an_unfinished_character(tokenizers: dict[str, Tokenizer], kind: str) -> None:
    tok = tokenizers[kind]
    ids = list(tok.encode("Hello 你好").ids)
    cut = next(n for n in range(len(ids), 0, -1) if tok.decode(ids[:n]).endswith(REPLACEMENT))
    stream = TextStream(tok.decode)
    streamed = "".join(stream.push(i) for i in ids[:cut])
    assert REPLACEMENT not in streamed
    assert streamed + stream.finish() == tok.decode(ids[:cut])


def test_byte_level_characters_appear_as_soon_as_complete(tokenizers: dict[str, Tokenizer]) -> None:
    tok = tokenizers["byte-level"]
    ids = list(tok.encode(CHINESE).ids)
    stream, seen = TextStream(tok.decode), ""
    for n, token_id in enumerate(ids, 1):
        seen += stream.push(token_id)
        assert len(tok.decode(ids[:n]).rstrip(REPLACEMENT)) - len(seen) <= 1  # at most the last character waits


@pytest.mark.parametrize("kind", KINDS)
def test_each_push_decodes_a_bounded_window(tokenizers: dict[str, Tokenizer], kind: str) -> None:
    tok = tokenizers[kind]
    sizes: list[int] = []

    def decode(ids: list[int], skip_special_tokens: bool = False) -> str:
        sizes.append(len(ids))
        return tok.decode(ids, skip_special_tokens=skip_special_tokens)

    ids = list(tok.encode((ENGLISH + OTHER) * 8).ids)
    stream = TextStream(decode)
    streamed = "".join(stream.push(i) for i in ids) + stream.finish()
    assert len(ids) > 300 and streamed == tok.decode(ids)
    runs = "".join("b" if piece.startswith("<0x") else " " for piece in tok.encode((ENGLISH + OTHER) * 8).pieces)
    longest_run = max(len(run) for run in runs.split()) if "b" in runs else 0
    assert max(sizes[:-1]) <= 32 + longest_run  # a run of byte pieces is decoded whole, never the whole text


def _first_hit(tok: Tokenizer, ids: list[int], stops: tuple[str, ...]) -> int | None:
    """The number of tokens after which the generated text first contains a stop string."""
    return next((n for n in range(1, len(ids) + 1) if any(s in tok.decode(ids[:n]) for s in stops)), None)


def _assert_stops_on_time(tok: Tokenizer, ids: list[int], stops: tuple[str, ...]) -> int | None:
    check, hit = stop_check(tok.decode, stops), _first_hit(tok, ids, stops)
    assert check is not None
    for n in range(1, len(ids) + 1):
        assert check(ids[:n]) == (n == hit), (n, hit)
        if n == hit:
            break
    return hit


@pytest.mark.parametrize("kind", KINDS)
def test_stop_string_across_token_boundaries(tokenizers: dict[str, Tokenizer], kind: str) -> None:
    tok = tokenizers[kind]
    for text, stop in ((TEXTS[0], "lo wor"), (TEXTS[0], "it's 3"), (CHINESE, "世界"), (EMOJI, "🦙 ll")):
        if kind == "wordpiece":  # BERT lowercases and spaces out Chinese characters
            stop = {"世界": "世 界"}.get(stop, stop.lower())
        ids = list(tok.encode(text).ids)
        hit = _assert_stops_on_time(tok, ids, (stop,))
        assert hit is not None and not any(stop in tok.decode([i]) for i in ids)  # really spans tokens
        assert stop not in tok.decode(ids[: hit - 1])


@pytest.mark.parametrize("kind", KINDS)
def test_stop_checks_match_a_full_decode_on_random_ids(tokenizers: dict[str, Tokenizer], kind: str) -> None:
    tok, rng = tokenizers[kind], random.Random(99)
    for trial in range(120):
        source = list(tok.encode(rng.choice([ENGLISH, OTHER, ENGLISH + OTHER])).ids)
        ids = source if trial % 2 else [rng.randrange(tok.vocab_size) for _ in range(40)]
        full = tok.decode(ids)
        if not full:
            continue
        start = rng.randrange(len(full))
        stop = full[start : start + rng.randint(1, 12)]
        assert _assert_stops_on_time(tok, ids, (stop, "never in this text \x00")) is not None


def test_stop_string_in_the_prompt_does_not_count(tokenizers: dict[str, Tokenizer]) -> None:
    tok = tokenizers["byte-level"]
    prompt, generated = list(tok.encode("Say 世界 twice:").ids), list(tok.encode(" the llama said it").ids)
    check = stop_check(tok.decode, ("世界",))
    assert check is not None and any(check(prompt[:n]) for n in range(1, len(prompt) + 1))  # fires on prompt text
    assert not any(check(generated[:n]) for n in range(1, len(generated) + 1))  # but sees generated ids only


class _Scripted:
    """A stepper whose logits always pick the next token of a script."""

    def __init__(self, script: list[int], vocab: int) -> None:
        self.script, self.vocab, self.position = script, vocab, 0

    def _next(self, rows: int) -> torch.Tensor:
        logits = torch.zeros(rows, self.vocab)  # (rows, V)
        logits[:, self.script[self.position]] = 10.0
        self.position += 1
        return logits

    def prefill(self, rows: int) -> torch.Tensor:
        return self._next(rows)

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        return self._next(len(tokens))

    def reorder(self, rows: torch.Tensor) -> None:
        pass


def test_greedy_search_stops_at_the_completing_token(tokenizers: dict[str, Tokenizer]) -> None:
    tok = tokenizers["byte-fallback"]
    prompt, script = list(tok.encode("羊驼 said").ids), list(tok.encode(" I like 羊驼 and more words").ids)
    stops = ("羊驼",)
    search = token_search(_Scripted(script, tok.vocab_size), prompt, GenerationSettings(max_new_tokens=len(script)),
                          stop_check(tok.decode, stops))
    with pytest.raises(StopIteration) as done:
        while True:
            next(search)
    (sequence,) = done.value.value
    assert sequence.finish_reason == "stop" and len(sequence.token_ids) == _first_hit(tok, script, stops)
    assert truncate_at_stop(tok.decode(list(sequence.token_ids)), stops) == "I like 羊驼"


def test_no_stop_strings_means_no_check() -> None:
    assert stop_check(str, ()) is None and stop_check(str, ("",)) is None


@pytest.mark.parametrize("text, stops, expected", [
    ("Hello world. User: hi", ("User:",), "Hello world. User:"),
    ("abc STOP def END", ("END", "STOP"), "abc STOP"),  # several stops: the earliest wins
    ("xabcdx", ("abcd", "bc"), "xabc"),  # overlapping: the one that ends first, where generation stopped
    ("one two two", ("two",), "one two"),  # the first occurrence
    ("no stop here", ("STOP",), "no stop here"),
    ("STOP at once", ("STOP", ""), "STOP"),  # empty stop strings are ignored
    ("你好，世界。我", ("。",), "你好，世界。"),
])
def test_truncate_at_stop(text: str, stops: tuple[str, ...], expected: str) -> None:
    assert truncate_at_stop(text, stops) == expected
