"""lmtui's Marian tokenizer (no sentencepiece at runtime) against transformers' MarianTokenizer (which uses it).

The tests train tiny SentencePiece Unigram models on English and German lines, build vocab.json as
transformers' Marian conversion does (the pieces of both models, then <pad>), and save a MarianTokenizer
with save_pretrained, so every folder shape Marian checkpoints come in is compared id for id.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from itertools import product
from pathlib import Path

import pytest
import sentencepiece as spm
from transformers import MarianTokenizer

from lmtui.errors import LmtuiError
from lmtui.inspect.tokens import split_text, trace_word
from lmtui.spm import PieceType, read_spm
from lmtui.tokenizer import load_tokenizer

ENGLISH = [f"{a} {b} {c}" for a, b, c in product(
    ["The quick brown fox", "A small frog", "My teacher", "Tom's sister", "The old café owner"],
    ["jumps over", "asked about", "never liked", "is painting", "wrote 3 letters to"],
    ["the lazy dog.", "a naïve question!", "the résumé, didn't she?", "about 42 dollars (or 3.5%).",
     "the weather in 2024.", "seven apples; then he left."])]
GERMAN = [f"{a} {b} {c}" for a, b, c in product(
    ["Der schnelle Fuchs", "Ein kleiner Frosch", "Meine Lehrerin", "Toms Schwester", "Der alte Café-Besitzer"],
    ["springt über", "fragte nach", "mochte nie", "malt gerade", "schrieb 3 Briefe an"],
    ["den faulen Hund.", "die Größe der Straße!", "die Übung, oder?", "etwa 42 Äpfel (oder 3,5 %).",
     "das Wetter im Jahr 2024.", "heiße Öfen; dann ging er."])]
TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "  Tom's   sister  asked about the café ",
    "Der kleine Frosch mochte die Größe der Straße nicht!",
    "Crème brûlée, naïve résumé: 3.14 and 2024 (42%)?",
    "ＦＵＬＬ width ① and a tab\there",
    "An unknown ꙮ character, twice ꙮꙮ, and ß",
    "",
    "   ",
    "before</s>after <unk> and <pad>",
    "▁a literal ▁ meta symbol",
    "full-width ＜unk＞ and ＜/s＞ are text, x<s>y too",
]
pytestmark = pytest.mark.filterwarnings("ignore:Recommended. pip install sacremoses")  # transformers' nag

GERMAN_TEXTS = ["Der alte Café-Besitzer schrieb 3 Briefe an die Übung.", "Heiße Öfen & Äpfel!", "ß"]


def _train(folder: Path, name: str, lines: list[str], model_type: str = "unigram") -> Path:
    (folder / f"{name}.txt").write_text("\n".join(lines), encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(folder / f"{name}.txt"), model_prefix=str(folder / name),
                                   vocab_size=80, hard_vocab_limit=False, model_type=model_type,
                                   character_coverage=1.0, minloglevel=2)
    return folder / f"{name}.model"


def _pieces(model: Path) -> list[str]:
    sp = spm.SentencePieceProcessor(model_file=str(model))
    return [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if not (sp.is_control(i) or sp.is_unknown(i))]


def _vocab(*models: Path, drop: tuple[str, ...] = ()) -> dict[str, int]:
    """Marian's joint vocabulary: </s> and <unk> first, the pieces, and <pad> appended by the conversion."""
    vocab = {"</s>": 0, "<unk>": 1}
    for piece in (p for m in models for p in _pieces(m) if p not in drop):
        vocab.setdefault(piece, len(vocab))
    return {**vocab, "<pad>": len(vocab)}


def _save(folder: Path, source: Path, target: Path, vocab: dict[str, int],
          target_vocab: dict[str, int] | None = None) -> Path:
    files = folder.parent / f"{folder.name}-files"
    files.mkdir()
    (files / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    extra = {}
    if target_vocab is not None:
        (files / "target_vocab.json").write_text(json.dumps(target_vocab), encoding="utf-8")
        extra = {"target_vocab_file": str(files / "target_vocab.json"), "separate_vocabs": True}
    MarianTokenizer(str(source), str(target), str(files / "vocab.json"), source_lang="en", target_lang="de",
                    **extra).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("spm")
    return {"en": _train(root, "en", ENGLISH), "de": _train(root, "de", GERMAN)}


@pytest.fixture(scope="module")
def folders(models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("marian")
    en, de = models["en"], models["de"]
    return {
        "shared spm": _save(root / "shared", en, en, _vocab(en)),
        "separate spm": _save(root / "separate", en, de, _vocab(en, de)),
        "spm pieces missing from vocab.json": _save(root / "missing", en, de, _vocab(en, de, drop=("▁the", "o"))),
        "separate vocabs": _save(root / "vocabs", en, de, _vocab(en), _vocab(de)),
    }


SHAPES = ["shared spm", "separate spm", "spm pieces missing from vocab.json", "separate vocabs"]


@pytest.mark.parametrize("shape", SHAPES)
def test_ids_match_transformers(folders: dict[str, Path], shape: str) -> None:
    reference, ours = MarianTokenizer.from_pretrained(folders[shape]), load_tokenizer(folders[shape])
    for text in [*TEXTS, *GERMAN_TEXTS, ">>de<< Hello there", ">>xx<<"]:
        assert list(ours.encode(text).ids) == reference(text)["input_ids"], text


@pytest.mark.parametrize("shape", SHAPES)
def test_decode_matches_transformers(folders: dict[str, Path], shape: str) -> None:
    reference, ours = MarianTokenizer.from_pretrained(folders[shape]), load_tokenizer(folders[shape])
    pad = reference.pad_token_id
    sequences = [reference(text_target=t)["input_ids"] for t in [*TEXTS, *GERMAN_TEXTS]]
    sequences += [[pad, *ids[:3], pad, *ids[3:]] for ids in sequences]  # special tokens inside the text
    sequences.append(list(range(len(reference))))  # every piece, control and unknown ones included
    for ids, skip in product(sequences, (True, False)):
        assert ours.decode(ids, skip_special_tokens=skip) == reference.decode(ids, skip_special_tokens=skip), ids


@pytest.mark.parametrize("shape", ["separate spm", "separate vocabs"])
def test_random_texts_match_transformers(folders: dict[str, Path], shape: str) -> None:
    """Typed-text noise: spaces of every kind, accents composed and not, full-width forms, special tokens."""
    reference, ours = MarianTokenizer.from_pretrained(folders[shape]), load_tokenizer(folders[shape])
    parts = [*"abcdefghijklmnopqrstuvwxyz THEGÄÖÜäöüßéèçñ0123456789.,;:!?'\"()-%$&/", "  ", "\t", "\n", "\r\n",
             "the ", "über", "\u00a0", "\u3000", "ＦＵ", "①", "ﬁ", "e\u0301", "ꙮ", "▁", "</s>", "<pad>", "＜unk＞"]
    rng = random.Random(0)
    for _ in range(400):
        text = "".join(rng.choice(parts) for _ in range(rng.randrange(1, 20)))
        ids = reference(text)["input_ids"]
        assert list(ours.encode(text).ids) == ids, text
        assert ours.decode(ids, skip_special_tokens=True) == reference.decode(ids, skip_special_tokens=True), text


def test_pieces_offsets_and_special_tokens(folders: dict[str, Path]) -> None:
    reference, ours = MarianTokenizer.from_pretrained(folders["separate spm"]), load_tokenizer(folders["separate spm"])
    text = "Tom's café ꙮ</s> ok"
    enc = ours.encode(text)
    assert list(enc.pieces) == reference.convert_ids_to_tokens(reference(text)["input_ids"])
    assert [p for p, special in zip(enc.pieces, enc.special) if special] == ["</s>", "</s>"]  # typed, appended
    spans = [text[start:end] for start, end in enc.offsets]
    plain = [(piece, span) for piece, span in zip(enc.pieces, spans) if piece not in ("▁", "<unk>", "</s>")]
    assert all(span == piece.lstrip("▁") for piece, span in plain)
    assert spans[enc.pieces.index("<unk>")] == "ꙮ" and spans[enc.pieces.index("</s>")] == "</s>" and spans[-1] == ""
    code = ours.encode(">>de<< ok")
    assert code.ids == tuple(reference(">>de<< ok")["input_ids"]) and code.offsets[0] == (0, 6)
    assert code.offsets[-1] == (0, 0) and code.special[-1]
    assert (ours.special.eos.id, ours.special.pad.id, ours.special.unk.id) == (
        reference.eos_token_id, reference.pad_token_id, reference.unk_token_id)
    assert ours.special.bos is None and ours.vocab_size == len(reference)
    assert ours.decode([*enc.ids, 10**6]) == reference.decode(list(enc.ids))  # unknown ids are dropped


def test_spm_reader_matches_sentencepiece(models: dict[str, Path]) -> None:
    model, sp = read_spm(models["de"]), spm.SentencePieceProcessor(model_file=str(models["de"]))
    assert [p.piece for p in model.pieces] == [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    assert [p.score for p in model.pieces] == pytest.approx([sp.get_score(i) for i in range(sp.get_piece_size())])
    assert [p.type for p in model.pieces[:3]] == [PieceType.UNKNOWN, PieceType.CONTROL, PieceType.CONTROL]
    assert model.normalizer.name == "nmt_nfkc" and model.normalizer.precompiled_charsmap
    assert model.unk_surface == " \u2047 "


@pytest.mark.parametrize("content", [b"", b"x", b"\x0a\xff\x01abc", b'{"not": "spm"}', "truncated"])
def test_corrupt_spm_is_one_line_error(folders: dict[str, Path], tmp_path: Path, content: bytes | str) -> None:
    folder = tmp_path / "broken"
    shutil.copytree(folders["separate spm"], folder)
    spm_file = folder / "source.spm"
    spm_file.write_bytes(spm_file.read_bytes()[:1000] if content == "truncated" else content)
    with pytest.raises(LmtuiError, match="source.spm: not a valid SentencePiece model") as error:
        load_tokenizer(folder)
    assert "\n" not in str(error.value)


def test_unsupported_files_are_refused(folders: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "bpe"
    shutil.copytree(folders["separate spm"], folder)
    shutil.copy(_train(tmp_path, "bpe", ENGLISH, model_type="bpe"), folder / "target.spm")
    with pytest.raises(LmtuiError, match="target.spm: a SentencePiece BPE model; lmtui reads only Unigram"):
        load_tokenizer(folder)
    shutil.copy(folders["separate spm"] / "target.spm", folder / "target.spm")
    (folder / "vocab.json").write_text(json.dumps({"</s>": 0, "a": 1}), encoding="utf-8")
    with pytest.raises(LmtuiError, match="unknown token '<unk>' is not in the vocabulary"):
        load_tokenizer(folder)
    (folder / "vocab.json").unlink()
    with pytest.raises(LmtuiError, match="has no vocab.json"):
        load_tokenizer(folder)


def test_runtime_needs_neither_sentencepiece_nor_protobuf(folders: dict[str, Path]) -> None:
    code = (f"import sys; from lmtui.tokenizer import load_tokenizer; load_tokenizer({str(folders['shared spm'])!r})"
            ".encode('hello'); print(sorted(m for m in ('sentencepiece', 'google.protobuf') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_lmtui_generate_on_a_marian_folder_equals_transformers(folders: dict[str, Path], tmp_path: Path) -> None:
    """The whole path a user takes: `lmtui generate -m <marian folder> TEXT`, tokens and text."""
    import shutil

    import torch
    from click.testing import CliRunner
    from transformers import MarianConfig, MarianMTModel

    from helpers_models import randomize
    from lmtui.cli import main

    folder = tmp_path / "opus-mt-en-de"
    shutil.copytree(folders["separate spm"], folder)
    reference = MarianTokenizer.from_pretrained(folder)
    pad = reference.pad_token_id
    config = MarianConfig(vocab_size=len(reference), d_model=32, encoder_layers=2, decoder_layers=2,
                          encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=48,
                          decoder_ffn_dim=48, max_position_embeddings=64, pad_token_id=pad, eos_token_id=0,
                          decoder_start_token_id=pad, forced_eos_token_id=0)
    randomize(MarianMTModel(config), std=0.2, seed=1).save_pretrained(folder)
    model = MarianMTModel.from_pretrained(folder).eval()  # reloaded: sinusoid tables are not saved
    text = "the old man wrote three letters"
    result = CliRunner().invoke(main, ["generate", text, "-m", str(folder), "--json", "--max-new-tokens", "8"])
    assert result.exit_code == 0, result.stderr
    (sequence,) = json.loads(result.stdout)["sequences"]
    inputs = reference(text, return_tensors="pt")
    expected = model.generate(**inputs, max_new_tokens=8, do_sample=False, num_beams=1)[0, 1:].tolist()
    assert json.loads(result.stdout)["prompt_token_ids"] == inputs["input_ids"][0].tolist()
    assert sequence["token_ids"] == expected
    assert sequence["text"] == reference.decode(torch.tensor(expected), skip_special_tokens=True)


@pytest.mark.parametrize("shape", ["separate spm", "separate vocabs"])
def test_target_split_uses_the_target_side(folders: dict[str, Path], shape: str) -> None:
    """A target is split with target.spm and named from the target vocabulary, as text_target encodes it;
    each word's trace replays target.spm's model."""
    reference, ours = MarianTokenizer.from_pretrained(folders[shape]), load_tokenizer(folders[shape])
    for text in GERMAN_TEXTS:
        ids = reference(text_target=text)["input_ids"]
        split = split_text(ours, text, target=True)
        assert [t.id for t in split.tokens] == ids, text
        assert [t.id for t in split_text(ours, text).tokens] == reference(text)["input_ids"]
        for word in split.words:
            expected = ours.target_backend.model.tokenize(word.text)
            word_trace = trace_word(ours, word.text, target=True)
            assert word_trace is not None and word_trace.pieces == tuple(t.value for t in expected), word.text
            named = tuple("<unk>" if split.tokens[i].unknown else piece
                          for i, piece in zip(word.tokens, word_trace.pieces))
            assert named == tuple(split.tokens[i].piece for i in word.tokens), word.text
