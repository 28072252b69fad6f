"""`lmtui tokenize` and lmtui.inspect.tokens: token splits equal transformers', traces replay the tokenizer.

Tokenizers are trained here on a paragraph of English, Chinese and emoji, one per algorithm: byte-level
BPE (GPT-2, RoBERTa), SentencePiece-style BPE with byte fallback (Llama), WordPiece (BERT), Unigram
(a T5 tokenizer.json, Marian's source.spm) and in-memory BPE/Unigram variants for the options that
change how words split. Every trace is checked against the tokenizer's own model on the same word.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
import sentencepiece as spm
from click.testing import CliRunner
from tokenizers import Tokenizer as Backend
from tokenizers import models, normalizers, pre_tokenizers, trainers
from transformers import (
    AutoTokenizer,
    BertTokenizer,
    GPT2Tokenizer,
    LlamaTokenizer,
    MarianTokenizer,
    RobertaTokenizer,
    T5Tokenizer,
)

from lmtui.checkpoint import DEFAULT_MODEL
from lmtui.cli import main
from lmtui.inspect.merges import BpeTrace, WordPieceTrace
from lmtui.inspect.tokens import TokenSplit, split_text, trace, trace_word
from lmtui.inspect.unigram import UnigramTrace
from lmtui.marian_tokenizer import MarianTokenizer as MarianTokenizerOurs
from lmtui.spm import PieceType, read_spm
from lmtui.tokenizer import SpecialTokens, Tokenizer, load_tokenizer

LINES = ["The quick brown fox jumps over the lazy dog, and the dog doesn't mind at all.",
         "A llama is not a tokenizer, but a tokenizer can split the word llama into pieces.",
         "Numbers like 42, 1999 and 3.14 show up in text too. Café naïve résumé.",
         "你好，世界。我喜欢羊驼。羊驼喜欢你。", "I ❤️ 🦙 llamas and 🐪 camels, 🦙🦙 twice."]
CORPUS = "\n".join(LINES * 4)
TEXTS = ["Hello world! The llamas don't jump over 42 lazy dogs.",  # English
         "你好，世界。我喜欢羊驼和猫。",  # Chinese, 猫 not in the corpus
         "I ❤️ 🦙 llamas, 🐪 camels and 🦄 unicorns 👩‍👩‍👧!",  # emoji, some unseen, a ZWJ sequence
         "  Café naïve résumé:\tdouble  spaces,\nnew lines 你好🦙 ",
         ""]
pytestmark = pytest.mark.filterwarnings("ignore:Recommended. pip install sacremoses")


def _trained_bpe(byte_level: bool, specials: list[str]) -> Backend:
    tok = Backend(models.BPE(byte_fallback=not byte_level, unk_token=None if byte_level else "<unk>"))
    if byte_level:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
        alphabet, specials = [], specials + [f"<0x{i:02X}>" for i in range(256)]
    tok.train_from_iterator([CORPUS], trainers.BpeTrainer(vocab_size=500, special_tokens=specials,
                                                           initial_alphabet=alphabet, show_progress=False))
    return tok


def _vocab_merges(tok: Backend) -> tuple[dict[str, int], list[tuple[str, str]]]:
    return tok.get_vocab(), [tuple(m) for m in json.loads(tok.to_str())["model"]["merges"]]


def _spm(folder: Path) -> Path:
    (folder / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(folder / "corpus.txt"), model_prefix=str(folder / "sp"), vocab_size=150,
                                   hard_vocab_limit=False, model_type="unigram", character_coverage=1.0,
                                   minloglevel=2)
    return folder / "sp.model"


def _save(hf_tokenizer, folder: Path, model_type: str) -> Path:
    hf_tokenizer.save_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({"model_type": model_type}))
    return folder


def _marian(folder: Path, model: Path) -> Path:
    files = folder.parent / "marian-files"
    files.mkdir()
    pieces = [p.piece for p in read_spm(model).pieces if p.type is PieceType.NORMAL]
    vocab = {"</s>": 0, "<unk>": 1, **{p: i + 2 for i, p in enumerate(pieces)}}
    (files / "vocab.json").write_text(json.dumps({**vocab, "<pad>": len(vocab)}), encoding="utf-8")
    MarianTokenizer(str(model), str(model), str(files / "vocab.json"), source_lang="en",
                    target_lang="de").save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tokenize")
    gpt2 = _vocab_merges(_trained_bpe(True, ["<|endoftext|>"]))
    roberta = _vocab_merges(_trained_bpe(True, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]))
    llama = _vocab_merges(_trained_bpe(False, ["<unk>", "<s>", "</s>"]))
    wordpiece = Backend(models.WordPiece(unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wordpiece.train_from_iterator([CORPUS], trainers.WordPieceTrainer(
        vocab_size=300, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], show_progress=False))
    sp = _spm(root)
    t5_vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    t5_vocab += [(p.piece, p.score) for p in read_spm(sp).pieces if p.type is PieceType.NORMAL]
    return {
        "gpt2": _save(GPT2Tokenizer(vocab=gpt2[0], merges=gpt2[1]), root / "gpt2", "gpt2"),
        "roberta": _save(RobertaTokenizer(vocab=roberta[0], merges=roberta[1]), root / "roberta", "roberta"),
        "llama": _save(LlamaTokenizer(vocab=llama[0], merges=llama[1], add_bos_token=True), root / "llama", "llama"),
        "bert": _save(BertTokenizer(vocab=wordpiece.get_vocab()), root / "bert", "bert"),
        "t5": _save(T5Tokenizer(vocab=t5_vocab, extra_ids=2), root / "t5", "t5"),
        "marian": _marian(root / "marian", sp),
    }


def _in_memory(name: str, folders: dict[str, Path]) -> Tokenizer:
    """Tokenizers with the BPE and Unigram options the checkpoints above leave off."""
    if name == "bpe-ignore-merges":  # the GPT-2 vocabulary, whole words taken directly
        data = json.loads((folders["gpt2"] / "tokenizer.json").read_text())
        data["model"]["ignore_merges"] = True
        return Tokenizer(Backend.from_str(json.dumps(data)), SpecialTokens())
    if name == "unigram-byte-fallback":  # unseen characters become <0x..> pieces instead of <unk>
        vocab = [("<unk>", 0.0), *((f"<0x{i:02X}>", -12.0) for i in range(256)), ("▁", -2.0)]
        vocab += [(piece, -3.0 - len(piece) / 10) for piece in sorted(set(CORPUS.replace(" ", "▁")) | {
            "▁the", "the", "▁llama", "llama", "s", "▁a", "▁lla", "ma", "你好", "羊驼", "▁dog", "do", "g"})]
        backend = Backend(models.Unigram(vocab, unk_id=0, byte_fallback=True))
        backend.pre_tokenizer = pre_tokenizers.Metaspace()
        return Tokenizer(backend, SpecialTokens())
    affixes = {"continuing_subword_prefix": "##", "end_of_word_suffix": "</w>"} if name == "bpe-affixes" else {}
    unknown = {} if name == "bpe-no-unk" else {"unk_token": "<unk>"}
    backend = Backend(models.BPE(fuse_unk=name == "bpe-fused-unk", **unknown, **affixes))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.train_from_iterator([CORPUS], trainers.BpeTrainer(
        vocab_size=300, special_tokens=list(unknown.values()), show_progress=False, **affixes))
    return Tokenizer(backend, SpecialTokens())


KINDS = {"gpt2": "byte-level BPE", "roberta": "byte-level BPE", "llama": "BPE", "bert": "WordPiece", "t5": "Unigram",
         "marian": "Unigram"}
REFERENCE_SHAPES = ["gpt2", "roberta", "llama", "bert", "t5"]
SHAPES = [*REFERENCE_SHAPES, "marian"]
IN_MEMORY = ["bpe-ignore-merges", "unigram-byte-fallback", "bpe-affixes", "bpe-fused-unk", "bpe-unfused-unk",
             "bpe-no-unk"]


@pytest.mark.parametrize("shape", REFERENCE_SHAPES)
def test_ids_pieces_and_offsets_equal_transformers(folders: dict[str, Path], shape: str) -> None:
    ours, theirs = load_tokenizer(folders[shape]), AutoTokenizer.from_pretrained(folders[shape])
    for text in [*TEXTS, "   ", " ".join(f"typed{s} {s} special" for s in theirs.all_special_tokens)]:
        split, ref = split_text(ours, text), theirs(text, return_offsets_mapping=True,
                                                    return_special_tokens_mask=True)
        assert [t.id for t in split.tokens] == ref["input_ids"], text
        assert [t.piece for t in split.tokens] == theirs.convert_ids_to_tokens(ref["input_ids"])
        assert [(t.start, t.end) for t in split.tokens] == [tuple(o) for o in ref["offset_mapping"]]
        assert all(t.special for t, m in zip(split.tokens, ref["special_tokens_mask"]) if m)
        assert [t.index for t in split.tokens] == list(range(len(split.tokens))) and split.kind == KINDS[shape]


def test_marian_ids_equal_transformers(folders: dict[str, Path]) -> None:
    ours, theirs = load_tokenizer(folders["marian"]), MarianTokenizer.from_pretrained(folders["marian"])
    for text in [*TEXTS, ">>de<< a language code first"]:
        split = split_text(ours, text)
        assert [t.id for t in split.tokens] == theirs(text)["input_ids"], text
        for token in split.tokens:  # offsets are characters of the text; a piece reads as its span
            assert 0 <= token.start <= token.end <= len(text)
            if token.word is not None and token.piece not in ("<unk>", "▁"):  # a lone ▁ spans the next character
                span = unicodedata.normalize("NFKC", text[token.start:token.end])  # as nmt_nfkc normalizes
                assert bytes(token.bytes).decode().strip() == span.strip()
    code = split_text(ours, ">>de<< hi")
    assert code.tokens[0].word is None and (code.tokens[0].start, code.tokens[0].end) == (0, 6)
    assert code.words[0].start >= 6 and code.words[0].text.startswith("▁")


def _check_words(tokenizer: Tokenizer, split: TokenSplit) -> None:
    """Each word's trace ends with exactly the tokens the tokenizer's model makes of it."""
    in_words = sorted(i for word in split.words for i in word.tokens)
    assert in_words == [t.index for t in split.tokens if t.word is not None]
    for n, word in enumerate(split.words):
        assert all(split.tokens[i].word == n for i in word.tokens)
        word_trace = trace_word(tokenizer, word.text)
        expected = tokenizer.backend.model.tokenize(word.text)
        assert word_trace is not None and word_trace.word == word.text
        assert word_trace.pieces == tuple(t.value for t in expected), word.text
        assert word_trace.ids == tuple(t.id for t in expected)
        if not isinstance(tokenizer, MarianTokenizerOurs):  # its ids come from vocab.json, not the model
            assert word_trace.ids == tuple(split.tokens[i].id for i in word.tokens)
        if isinstance(word_trace, BpeTrace):
            _check_merges(tokenizer, word_trace)


def _check_merges(tokenizer: Tokenizer, word_trace: BpeTrace) -> None:
    """Replay the merges: each is the lowest-rank (then leftmost) pair present, until none is left."""
    model = json.loads(tokenizer.backend.to_str())["model"]
    ranks = {tuple(m): rank for rank, m in enumerate(model["merges"])}
    cut = len(model["continuing_subword_prefix"] or "")
    pieces = list(word_trace.initial)
    for merge in word_trace.merges:
        candidates = [(ranks[pair], n) for n, pair in enumerate(zip(pieces, pieces[1:])) if pair in ranks]
        assert (merge.rank, merge.position) == min(candidates)
        assert (merge.left, merge.right) == tuple(pieces[merge.position:merge.position + 2])
        assert merge.result == merge.left + merge.right[cut:]
        pieces[merge.position:merge.position + 2] = [merge.result]
        assert tuple(pieces) == merge.pieces
    assert not any(pair in ranks for pair in zip(pieces, pieces[1:])) or word_trace.whole_word
    assert tuple(pieces) == word_trace.pieces
    built = [word_trace.merges_for(k) for k in range(len(pieces))]  # each merge builds exactly one final piece
    assert sorted(id(m) for merges in built for m in merges) == sorted(id(m) for m in word_trace.merges)
    for k, ((start, end), merges) in enumerate(zip(word_trace.spans, built)):
        assert (merges[-1].result if merges else word_trace.initial[start]) == pieces[k] and end - start >= 1


@pytest.mark.parametrize("shape", SHAPES)
def test_traces_reproduce_the_pieces(folders: dict[str, Path], shape: str) -> None:
    tokenizer = load_tokenizer(folders[shape])
    for text in TEXTS:
        _check_words(tokenizer, split_text(tokenizer, text))


@pytest.mark.parametrize("name", IN_MEMORY)
def test_traces_follow_the_bpe_and_unigram_options(folders: dict[str, Path], name: str) -> None:
    tokenizer = _in_memory(name, folders)
    traces = []
    for text in TEXTS:
        split = split_text(tokenizer, text)
        _check_words(tokenizer, split)
        traces += [trace_word(tokenizer, word.text) for word in split.words]
    if name == "bpe-ignore-merges":
        assert any(t.whole_word for t in traces) and any(t.merges for t in traces)
    if name == "bpe-affixes":
        assert any(p.endswith("</w>") for t in traces for p in t.pieces)
        assert any(p.startswith("##") for t in traces for p in t.pieces)
    if name in ("bpe-fused-unk", "bpe-unfused-unk"):  # neither 和 nor 猫 is in the corpus
        word = next(t for t in traces if t.word.endswith("和猫"))
        assert word.pieces.count("<unk>") == (1 if name == "bpe-fused-unk" else 2)
    if name == "bpe-no-unk":
        assert any(t.word == "🦄" and t.pieces == () for t in traces)  # dropped without an unknown token
    if name == "unigram-byte-fallback":
        assert any("<0xE7>" in t.pieces for t in traces)  # 猫 is e7 8c ab


def test_bytes_and_partial_pieces(folders: dict[str, Path]) -> None:
    gpt2, llama = load_tokenizer(folders["gpt2"]), load_tokenizer(folders["llama"])
    for text in TEXTS:
        split = split_text(gpt2, text)
        assert b"".join(bytes(t.bytes) for t in split.tokens) == text.encode()
        assert [t.partial for t in split.tokens] == [not _whole_characters(bytes(t.bytes)) for t in split.tokens]
    for tokenizer in (gpt2, llama):  # 猫 is not in the corpus: its three bytes are pieces of their own
        split = split_text(tokenizer, "a 猫 b")
        at = [t for t in split.tokens if t.start <= 2 < t.end]
        assert b"".join(bytes(t.bytes) for t in at).strip() == "猫".encode() and all(t.partial for t in at[-2:])
    llama_cat = [t for t in split.tokens if t.piece.startswith("<0x")]
    assert [t.piece for t in llama_cat] == ["<0xE7>", "<0x8C>", "<0xAB>"]
    assert [t.display for t in llama_cat] == ["<E7>", "<8C>", "<AB>"] and llama_cat[0].bytes == (0xE7,)


def _whole_characters(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def test_display_forms(folders: dict[str, Path]) -> None:
    gpt2 = split_text(load_tokenizer(folders["gpt2"]), "the dog\n")
    assert [t.display for t in gpt2.tokens] == [t.piece.replace("Ġ", "␣").replace("Ċ", "↵") for t in gpt2.tokens]
    assert any(t.display.startswith("␣") for t in gpt2.tokens)
    llama = split_text(load_tokenizer(folders["llama"]), "the dog")
    assert llama.tokens[0].display == "<s>" and llama.tokens[0].special and llama.tokens[0].word is None
    assert all(t.display == t.piece.replace("▁", "␣") for t in llama.tokens[1:])
    assert bytes(llama.tokens[1].bytes).startswith(b" ")
    bert = split_text(load_tokenizer(folders["bert"]), "llamas unicorns")
    continued = [t for t in bert.tokens if t.piece.startswith("##")]
    assert continued and all(t.display == t.piece and bytes(t.bytes) == t.piece[2:].encode() for t in continued)


def test_wordpiece_steps(folders: dict[str, Path]) -> None:
    tokenizer = load_tokenizer(folders["bert"])
    vocab = tokenizer.backend.get_vocab()
    split = split_text(tokenizer, "llamaz жж " + "a" * 101)
    traces = [trace_word(tokenizer, w.text) for w in split.words]
    assert all(isinstance(t, WordPieceTrace) for t in traces)
    llamaz = traces[0]
    assert llamaz.unknown is None and len(llamaz.pieces) > 1
    for match in llamaz.matches:  # the found piece is the longest one in the vocabulary
        prefix = "##" if match.start else ""
        assert match.piece == prefix + llamaz.word[match.start:match.end] and match.piece in vocab
        assert list(match.rejected) == [prefix + llamaz.word[match.start:end]
                                        for end in range(len(llamaz.word), match.end, -1)]
        assert not any(r in vocab for r in match.rejected)
    assert traces[1].pieces == ("[UNK]",) and "no vocabulary entry at character" in traces[1].unknown
    unknown = [t for t in split.tokens if t.unknown]
    assert [(t.piece, split.text[t.start:t.end]) for t in unknown] == [("[UNK]", "жж"), ("[UNK]", "a" * 101)]
    assert traces[2].pieces == ("[UNK]",) and "max_input_chars_per_word" in traces[2].unknown


def _segmentations(word: str, vocab: dict[str, float], unknown: float) -> list[float]:
    """Every segmentation's score, by brute force."""
    singles = {c for c in word if c in vocab}
    scores = []
    for cuts in itertools.product((False, True), repeat=len(word) - 1):
        bounds = [0, *(n + 1 for n, cut in enumerate(cuts) if cut), len(word)]
        parts = [word[a:b] for a, b in zip(bounds, bounds[1:])]
        if all(p in vocab or (len(p) == 1 and p not in singles) for p in parts):
            scores.append(sum(vocab[p] if p in vocab else unknown for p in parts))
    return sorted(scores, reverse=True)


@pytest.mark.parametrize("shape", ["t5", "marian"])
def test_unigram_best_and_runner_up_are_the_two_highest(folders: dict[str, Path], shape: str) -> None:
    tokenizer = load_tokenizer(folders[shape])
    model = json.loads(tokenizer.backend.to_str())["model"]
    vocab = {piece: score for piece, score in model["vocab"]}
    unknown = min(vocab.values()) - 10.0
    texts = [*TEXTS, "llamas", "the lazy dog", "a dog", "你好", "🦙🦙", "camels"]
    words = [w for text in texts for w in split_text(tokenizer, text).words if 1 < len(w.text) <= 12]
    assert len(words) >= 5
    for word in words:
        word_trace = trace_word(tokenizer, word.text)
        assert isinstance(word_trace, UnigramTrace)
        scores = _segmentations(word.text, vocab, unknown)
        assert word_trace.best.score == pytest.approx(scores[0])
        assert word_trace.best.score == pytest.approx(sum(p.score for p in word_trace.best.pieces))
        assert "".join(p.piece for p in word_trace.best.pieces) == word.text
        if len(scores) > 1:
            assert word_trace.runner_up is not None and word_trace.runner_up.score == pytest.approx(scores[1])
        else:
            assert word_trace.runner_up is None


def test_trace_of_a_token(folders: dict[str, Path]) -> None:
    tokenizer = load_tokenizer(folders["llama"])
    assert trace(tokenizer, "the dog", 0) is None  # <s>
    last = trace(tokenizer, "the dog", -1)
    assert isinstance(last, BpeTrace) and last.pieces[-1] == split_text(tokenizer, "the dog").tokens[-1].piece
    with pytest.raises(IndexError):
        trace(tokenizer, "the dog", 99)


def _run(*args: str, input: str | None = None):
    return CliRunner().invoke(main, ["tokenize", *args], input=input)


def test_cli_json_matches_the_contract(folders: dict[str, Path]) -> None:
    text = "Hello 你好 🦙"
    result = _run(text, "-m", str(folders["llama"]), "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    split = split_text(load_tokenizer(folders["llama"]), text)
    assert [(t["id"], t["piece"], t["start"], t["end"], t["special"]) for t in data["tokens"]] == [
        (t.id, t.piece, t.start, t.end, t.special) for t in split.tokens]
    assert all({"display", "bytes", "partial", "word"} <= set(t) for t in data["tokens"])
    assert data["kind"] == "BPE" and data["text"] == text and "trace" not in data["words"][0]
    traced = json.loads(_run(text, "-m", str(folders["llama"]), "--json", "--merges").stdout)
    assert traced["tokens"] == data["tokens"]
    assert [w["trace"]["pieces"] for w in traced["words"]] == [[split.tokens[i].piece for i in w.tokens]
                                                                for w in split.words]
    assert traced["words"][0]["trace"]["algorithm"] == "BPE" and traced["words"][0]["trace"]["merges"]


def test_cli_text_output_and_stdin(folders: dict[str, Path]) -> None:
    result = _run("a 猫", "-m", str(folders["gpt2"]))
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].endswith("(byte-level BPE)") and lines[1].split() == ["#", "id", "piece", "reads", "chars"]
    assert "partial UTF-8: e7" in result.stdout and "␣" in result.stdout
    assert _run("-", "-m", str(folders["gpt2"]), input="a 猫").stdout == result.stdout
    assert _run("-m", str(folders["gpt2"]), input="a 猫").stdout == result.stdout
    llama = _run("the dog", "-m", str(folders["llama"]), "--trace").stdout
    assert "special" in llama.splitlines()[2] and "word 0: ▁the" in llama and "rank " in llama
    bert = _run("llamas", "-m", str(folders["bert"]), "--trace").stdout
    assert "at 0" in bert and "pieces" in bert
    t5 = _run("the lazy dog", "-m", str(folders["t5"]), "--trace").stdout
    assert "best " in t5 and "runner-up" in t5
    unknown = _run("a 猫", "-m", str(folders["t5"])).stdout.splitlines()
    assert [row.split()[2:] for row in unknown if "unknown" in row] == [["<unk>", "<unk>", "2:3", "unknown"]]


def test_cli_errors(tmp_path: Path) -> None:
    missing = _run("hi", "-m", str(tmp_path / "nowhere"))
    assert missing.exit_code == 1 and missing.stderr.startswith("Error: ") and missing.stderr.count("\n") == 1
    empty = _run("hi", "-m", str(tmp_path))
    assert empty.exit_code == 1 and "no tokenizer found" in empty.stderr
    assert _run("hi", "--device", "tpu").exit_code == 2


def test_bundled_model_without_torch() -> None:
    code = ("import sys; from lmtui.cli import main; "
            "main(['tokenize', 'Return the value 你好', '--json', '--trace'], standalone_mode=False); "
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    output, torch_loaded = done.stdout.strip().rsplit("\n", 1)
    assert torch_loaded == "False"
    ids = [t["id"] for t in json.loads(output)["tokens"]]
    assert ids == AutoTokenizer.from_pretrained(DEFAULT_MODEL)("Return the value 你好")["input_ids"]


def test_unigram_ties_keep_the_piece_that_starts_first() -> None:
    """Equal totals: the model keeps the path whose last piece starts earliest (here, the longest piece)."""
    vocab = [("<unk>", 0.0), ("a", -1.0), ("b", -1.0), ("c", -1.0), ("ab", -2.0), ("bc", -2.0), ("abc", -3.0)]
    tokenizer = Tokenizer(Backend(models.Unigram(vocab, unk_id=0)), SpecialTokens())
    for word in ("ab", "bc", "abc", "abcab", "cab", "xab"):
        word_trace = trace_word(tokenizer, word)
        assert word_trace.pieces == tuple(t.value for t in tokenizer.backend.model.tokenize(word)), word
    assert trace_word(tokenizer, "abc").pieces == ("abc",)
