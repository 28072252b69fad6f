"""lmtui.tokenizer against transformers.AutoTokenizer on tiny tokenizers trained here, one per folder shape."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tokenizers import Tokenizer as Backend
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    AutoTokenizer,
    BertTokenizer,
    GPT2Tokenizer,
    LlamaTokenizer,
    PreTrainedTokenizerFast,
    RobertaTokenizer,
)

from lmtui.errors import LmtuiError
from lmtui.tokenizer import Encoding, SpecialToken, Tokenizer, load_tokenizer

CORPUS = """
The llama is a domesticated South American camelid, widely used as a meat and pack animal by Andean cultures
since the pre-Columbian era. Llamas are social animals and live with others as a herd. Their wool is soft and
contains only a small amount of lanolin. Llamas can learn simple tasks after a few repetitions. When using a
pack, they can carry about a quarter of their body weight for eight to thirteen kilometres. The name llama was
adopted by European settlers from native Peruvians. The ancestors of llamas are thought to have originated from
the Great Plains of North America about forty million years ago, and subsequently migrated to South America about
three million years ago during the Great American Interchange. By the end of the last ice age, camelids were
extinct in North America. As of 2007, there were over seven million llamas and alpacas in South America. Some were
imported to the United States and Canada late in the twentieth century; their descendants now number more than one
hundred and fifty eight thousand llamas and one hundred thousand alpacas. A llama is not a tokenizer, but a
tokenizer can split the word llama into pieces. Don't you think it's strange? I'd say we've seen stranger things.
Hello world! The quick brown fox jumps over the lazy dog, and the dog doesn't mind at all. Numbers like 42, 1999
and 3.14 show up in text too. 你好，世界。我喜欢羊驼。 I ❤️ 🦙 llamas and 🐪 camels. Café naïve résumé.
""" * 3

TEXTS = [
    "Hello world! The llamas don't jump.",
    "Hello</s>world <s> after a special token",
    "你好，世界",
    "I ❤️ 🦙 llamas",
    "  leading spaces,  double  spaces and a trailing space ",
    "Café naïve résumé 3.14",
    "<|im_start|>user then the end",
    "",
]


def _bpe(vocab_size: int, specials: list[str], byte_level: bool) -> Backend:
    tok = Backend(models.BPE(byte_fallback=not byte_level, unk_token=None if byte_level else "<unk>"))
    if byte_level:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:  # SentencePiece style: ▁ for spaces, bytes as <0x..> pieces when a character is unknown
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
        alphabet, specials = [], specials + [f"<0x{i:02X}>" for i in range(256)]
    tok.train_from_iterator([CORPUS], trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                                           initial_alphabet=alphabet, show_progress=False))
    return tok


def _vocab_merges(tok: Backend) -> tuple[dict[str, int], list[tuple[str, str]]]:
    merges = json.loads(tok.to_str())["model"]["merges"]
    return tok.get_vocab(), [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]


def _wordpiece() -> dict[str, int]:
    tok = Backend(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator([CORPUS], trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials,
                                                                 show_progress=False))
    return tok.get_vocab()


def _save(hf_tokenizer, folder: Path, model_type: str | None, **config_extra) -> Path:
    hf_tokenizer.save_pretrained(folder)
    if model_type is not None:
        (folder / "config.json").write_text(json.dumps({"model_type": model_type, **config_extra}))
    return folder


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def _files_only(src: Path, dst: Path, backend: Backend | None = None,
                vocab_txt: dict[str, int] | None = None) -> Path:
    """A copy of a saved folder that has vocab.json + merges.txt or vocab.txt instead of tokenizer.json."""
    dst.mkdir()
    for name in ("tokenizer_config.json", "config.json"):
        if (src / name).exists():
            (dst / name).write_text((src / name).read_text())
    if backend is not None:
        backend.model.save(str(dst))
    if vocab_txt is not None:
        (dst / "vocab.txt").write_text("".join(t + "\n" for t, _ in sorted(vocab_txt.items(), key=lambda x: x[1])))
    return dst


def _gpt2_folders(root: Path) -> dict[str, Path]:
    gpt2 = _bpe(420, ["<|endoftext|>"], byte_level=True)
    vocab, merges = _vocab_merges(gpt2)
    out = {name: _save(GPT2Tokenizer(vocab=vocab, merges=merges), root / name, model_type)
           for name, model_type in (("gpt2", "gpt2"), ("gpt2-json-bos", "gpt2"), ("gpt2-json-split", "llama"))}
    out["gpt2-files"] = _files_only(out["gpt2"], root / "gpt2-files", backend=gpt2)
    out["gpt2-files-bos"] = _files_only(out["gpt2"], root / "gpt2-files-bos", backend=gpt2)
    _edit_json(out["gpt2-files-bos"] / "tokenizer_config.json", add_bos_token=True, add_eos_token=True)
    _edit_json(out["gpt2-json-bos"] / "tokenizer_config.json", add_bos_token=True)  # ignored beside tokenizer.json
    # Like SmolLM2 (GPT2Tokenizer, model_type llama) with its own splitting: transformers rebuilds the pipeline.
    _edit_json(out["gpt2-json-split"] / "tokenizer.json", pre_tokenizer={"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"String": "a"}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]})
    out["gpt2-prefix"] = _save(GPT2Tokenizer(vocab=vocab, merges=merges, add_prefix_space=True),
                               root / "gpt2-prefix", "gpt2")
    return out


def _encoder_folders(root: Path) -> dict[str, Path]:
    roberta = _bpe(420, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"], byte_level=True)
    vocab, merges = _vocab_merges(roberta)
    out = {"roberta": _save(RobertaTokenizer(vocab=vocab, merges=merges), root / "roberta", "roberta")}
    out["roberta-files"] = _files_only(out["roberta"], root / "roberta-files", backend=roberta)
    out["bart-files"] = _files_only(out["roberta"], root / "bart-files", backend=roberta)
    _edit_json(out["bart-files"] / "tokenizer_config.json", tokenizer_class="BartTokenizer")
    _edit_json(out["bart-files"] / "config.json", model_type="bart")
    wordpiece = _wordpiece()
    out["bert"] = _save(BertTokenizer(vocab=wordpiece), root / "bert", "bert")
    out["bert-files"] = _files_only(out["bert"], root / "bert-files", vocab_txt=wordpiece)
    out["bert-cased-files"] = _files_only(out["bert"], root / "bert-cased-files", vocab_txt=wordpiece)
    _edit_json(out["bert-cased-files"] / "tokenizer_config.json", do_lower_case=False,
               clean_up_tokenization_spaces=True)
    out["bert-json-cased"] = _save(BertTokenizer(vocab=wordpiece), root / "bert-json-cased", "bert")
    _edit_json(out["bert-json-cased"] / "tokenizer_config.json", do_lower_case=False)
    return out


def _llama_folders(root: Path) -> dict[str, Path]:
    spm = _bpe(500, ["<unk>", "<s>", "</s>"], byte_level=False)
    vocab, merges = _vocab_merges(spm)
    names = {"llama": "llama", "llama-legacy": "llama", "llama-legacy-true": "llama", "llama-no-prefix": "llama",
             "llama-legacy-mistral": "mistral"}  # under Mistral transformers keeps tokenizer.json as it is
    out = {name: _save(LlamaTokenizer(vocab=vocab, merges=merges, add_bos_token=True), root / name, model_type)
           for name, model_type in names.items()}
    for name in names.keys() - {"llama"}:
        # The tokenizer.json older transformers wrote for Llama 2 / TinyLlama: a normalizer, no pre-tokenizer.
        _edit_json(out[name] / "tokenizer.json", pre_tokenizer=None, normalizer={
            "type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                                                {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]})
        _edit_json(out[name] / "tokenizer_config.json", tokenizer_class="LlamaTokenizerFast")
    _edit_json(out["llama-legacy-true"] / "tokenizer_config.json", legacy=True)
    _edit_json(out["llama-no-prefix"] / "tokenizer_config.json", add_prefix_space=False)
    return out


def _generic_folders(root: Path) -> dict[str, Path]:
    # Llama 3 style: byte-level BPE in a generic fast tokenizer whose tokenizer.json adds the BOS itself.
    llama3 = _bpe(420, ["<|begin_of_text|>", "<|end_of_text|>"], byte_level=True)
    llama3.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", 0)])
    generic = PreTrainedTokenizerFast(tokenizer_object=llama3, bos_token="<|begin_of_text|>",
                                      eos_token="<|end_of_text|>")
    out = {"generic": _save(generic, root / "generic", "llama", bos_token_id=0, eos_token_id=[1, 0])}
    out.update({name: _save(generic, root / name, "llama") for name in
                ("generic-declared-llama", "generic-extra", "generic-no-template")})
    # Llama 3 checkpoints declare LlamaTokenizerFast over byte-level files; transformers then keeps the files.
    _edit_json(out["generic-declared-llama"] / "tokenizer_config.json", tokenizer_class="LlamaTokenizerFast")
    _edit_json(out["generic-extra"] / "tokenizer_config.json", additional_special_tokens=["<|im_start|>", "the"])
    # No post-processor in tokenizer.json: add_bos_token in tokenizer_config.json does not bring one back.
    _edit_json(out["generic-no-template"] / "tokenizer.json", post_processor=None)
    _edit_json(out["generic-no-template"] / "tokenizer_config.json", add_bos_token=True, add_eos_token=True)

    unigram = Backend(models.Unigram())
    unigram.pre_tokenizer = pre_tokenizers.Metaspace()
    unigram.train_from_iterator([CORPUS], trainers.UnigramTrainer(
        vocab_size=200, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>", show_progress=False))
    out["unigram"] = _save(PreTrainedTokenizerFast(tokenizer_object=unigram, unk_token="<unk>", eos_token="</s>",
                                                   pad_token="<pad>"), root / "unigram", None)
    wordlevel = Backend(models.WordLevel(unk_token="[UNK]"))
    wordlevel.pre_tokenizer = pre_tokenizers.Whitespace()
    wordlevel.train_from_iterator([CORPUS], trainers.WordLevelTrainer(special_tokens=["[UNK]"], show_progress=False))
    out["wordlevel"] = _save(PreTrainedTokenizerFast(tokenizer_object=wordlevel, unk_token="[UNK]"),
                             root / "wordlevel", None)
    return out


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tokenizers")
    return {**_gpt2_folders(root), **_encoder_folders(root), **_llama_folders(root), **_generic_folders(root)}


SHAPES = ["gpt2", "gpt2-files", "gpt2-files-bos", "gpt2-json-bos", "gpt2-json-split", "gpt2-prefix", "roberta",
          "roberta-files", "bart-files", "bert", "bert-files", "bert-cased-files", "bert-json-cased", "llama",
          "llama-legacy", "llama-legacy-true", "llama-no-prefix", "llama-legacy-mistral", "generic",
          "generic-declared-llama", "generic-extra", "generic-no-template", "unigram", "wordlevel"]


def test_every_folder_is_checked(folders: dict[str, Path]) -> None:
    assert sorted(SHAPES) == sorted(folders)


def _assert_same_as_transformers(ours: Tokenizer, theirs, text: str) -> None:
    enc = ours.encode(text)
    ref = theirs(text, return_offsets_mapping=True)
    assert list(enc.ids) == ref["input_ids"]
    assert list(enc.pieces) == theirs.convert_ids_to_tokens(ref["input_ids"])
    assert [tuple(o) for o in enc.offsets] == [tuple(o) for o in ref["offset_mapping"]]
    bare = ours.encode(text, add_special_tokens=False)
    assert list(bare.ids) == theirs(text, add_special_tokens=False)["input_ids"]
    for skip in (False, True):
        assert ours.decode(enc.ids, skip_special_tokens=skip) == theirs.decode(ref["input_ids"],
                                                                                skip_special_tokens=skip)


@pytest.mark.parametrize("shape", SHAPES)
def test_matches_transformers(folders: dict[str, Path], shape: str) -> None:
    ours, theirs = load_tokenizer(folders[shape]), AutoTokenizer.from_pretrained(folders[shape])
    for text in TEXTS:
        _assert_same_as_transformers(ours, theirs, text)
    assert ours.vocab_size == len(theirs)
    for name in ("bos", "eos", "pad", "unk", "mask", "cls", "sep"):
        token: SpecialToken | None = getattr(ours.special, name)
        if getattr(theirs, f"{name}_token") is not None:  # lmtui may add config.json fallbacks on top
            assert token == SpecialToken(getattr(theirs, f"{name}_token"), getattr(theirs, f"{name}_token_id"))


@pytest.mark.parametrize("shape", ["gpt2", "gpt2-files", "roberta", "bert", "llama", "llama-legacy"])
def test_special_token_typed_in_text(folders: dict[str, Path], shape: str) -> None:
    ours, theirs = load_tokenizer(folders[shape]), AutoTokenizer.from_pretrained(folders[shape])
    marker = (ours.special.eos or ours.special.sep)
    text = f"Hello{marker.text}world {marker.text} again"
    _assert_same_as_transformers(ours, theirs, text)
    enc = ours.encode(text, add_special_tokens=False)
    assert enc.ids.count(marker.id) == 2
    assert [s for i, s in zip(enc.ids, enc.special) if i == marker.id] == [True, True]
    assert not any(s for i, s in zip(enc.ids, enc.special) if i != marker.id)


@pytest.mark.parametrize("shape", ["gpt2", "gpt2-files", "roberta-files", "llama", "generic"])
def test_decode_round_trips(folders: dict[str, Path], shape: str) -> None:
    ours = load_tokenizer(folders[shape])
    for text in (t for t in TEXTS if "<" not in t):  # skip_special_tokens drops typed special tokens too
        # Llama's decoder strips the one space its pre-tokenizer would have prepended, even when the text had it.
        expected = text[1:] if shape == "llama" and text.startswith(" ") else text
        assert ours.decode(ours.encode(text).ids, skip_special_tokens=True) == expected


def test_offsets_are_characters_of_the_text(folders: dict[str, Path]) -> None:
    text = "I ❤️ 🦙 llamas 你好"
    for shape in ("gpt2", "llama", "bert"):
        enc = load_tokenizer(folders[shape]).encode(text)
        for (start, end), special in zip(enc.offsets, enc.special):
            assert 0 <= start <= end <= len(text)
            assert (start, end) != (0, 0) or special
        words = {text[s:e] for (s, e), sp in zip(enc.offsets, enc.special) if not sp}
        assert "🦙" in "".join(words) and "llamas" in "".join(words)
    bert = load_tokenizer(folders["bert"]).encode("你好，世界")
    assert [bert.offsets[i] for i in range(1, 6)] == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]


def test_kind_labels(folders: dict[str, Path]) -> None:
    kinds = {shape: load_tokenizer(folders[shape]).kind for shape in
             ("gpt2", "gpt2-files", "roberta", "generic", "llama", "bert", "bert-files", "unigram", "wordlevel")}
    assert kinds == {"gpt2": "byte-level BPE", "gpt2-files": "byte-level BPE", "roberta": "byte-level BPE",
                     "generic": "byte-level BPE", "llama": "BPE", "bert": "WordPiece", "bert-files": "WordPiece",
                     "unigram": "Unigram", "wordlevel": "WordLevel"}


def test_templates_and_special_tokens(folders: dict[str, Path]) -> None:
    gpt2 = load_tokenizer(folders["gpt2"])
    eot = gpt2.special.eos
    assert eot is not None and eot.text == "<|endoftext|>" and gpt2.special.bos == eot and gpt2.special.pad is None
    assert eot.id not in gpt2.encode("hi").ids  # GPT-2 adds nothing
    bos_files = load_tokenizer(folders["gpt2-files-bos"]).encode("hi")
    assert bos_files.ids[0] == eot.id and bos_files.ids[-1] == eot.id and bos_files.special[0]
    assert load_tokenizer(folders["gpt2-json-bos"]).encode("hi").ids[0] != eot.id  # ignored beside tokenizer.json
    roberta = load_tokenizer(folders["roberta"])
    enc = roberta.encode("hello there")
    assert enc.pieces[0] == "<s>" and enc.pieces[-1] == "</s>" and enc.special == (True,) + (False,) * (
        len(enc.ids) - 2) + (True,)
    def after_space(e: Encoding) -> tuple[int, int]:
        return next(o for o, piece in zip(e.offsets, e.pieces) if piece.startswith("Ġ"))

    assert after_space(enc) == (6, 8)  # RobertaProcessing trims the space off "Ġth"; GPT-2 keeps it
    assert after_space(load_tokenizer(folders["gpt2"]).encode("hello there"))[0] == 5
    bert = load_tokenizer(folders["bert"])
    assert bert.encode("Hello").pieces[0] == "[CLS]" and bert.special.mask.text == "[MASK]"
    assert bert.piece_to_id("[MASK]") == bert.special.mask.id and bert.id_to_piece(bert.special.cls.id) == "[CLS]"
    llama = load_tokenizer(folders["llama"])
    assert llama.encode("Hi").ids[0] == llama.special.bos.id == 1 and llama.special.unk.text == "<unk>"
    generic = load_tokenizer(folders["generic"])
    assert generic.special.bos == SpecialToken("<|begin_of_text|>", 0)
    assert generic.special.eos == SpecialToken("<|end_of_text|>", 1)


def test_config_json_fills_special_tokens_the_tokenizer_lacks(folders: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "tokenizer.json").write_text((folders["generic"] / "tokenizer.json").read_text())
    (folder / "config.json").write_text(json.dumps({"bos_token_id": 0, "eos_token_id": [1, 0], "pad_token_id": 1}))
    tok = load_tokenizer(folder)
    assert tok.special.bos == SpecialToken("<|begin_of_text|>", 0)
    assert tok.special.eos == SpecialToken("<|end_of_text|>", 1) == tok.special.pad
    assert tok.special.mask is None and tok.special.unk is None


def test_special_token_dicts_and_special_tokens_map(folders: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "dicts"
    folder.mkdir()
    (folder / "tokenizer.json").write_text((folders["llama"] / "tokenizer.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "LlamaTokenizer", "bos_token": {
        "__type": "AddedToken", "content": "<s>", "lstrip": False, "normalized": True, "rstrip": False}}))
    tokens_map = {"eos_token": {"content": "</s>"}, "pad_token": "<unk>"}
    (folder / "special_tokens_map.json").write_text(json.dumps(tokens_map))
    tok = load_tokenizer(folder)
    theirs = AutoTokenizer.from_pretrained(folder)
    assert (tok.special.bos, tok.special.eos, tok.special.pad) == (
        SpecialToken("<s>", 1), SpecialToken("</s>", 2), SpecialToken("<unk>", 0))
    assert (theirs.eos_token_id, theirs.pad_token_id) == (2, 0)
    _assert_same_as_transformers(tok, theirs, "Hello </s> world")


def test_unknown_ids_do_not_crash(folders: dict[str, Path]) -> None:
    tok = load_tokenizer(folders["gpt2"])
    assert tok.id_to_piece(tok.vocab_size + 10) is None and tok.id_to_piece(-1) is None
    assert tok.piece_to_id("no such piece, surely") is None
    hello = list(tok.encode("hello").ids)
    assert tok.decode(hello + [tok.vocab_size + 10]) == "hello"
    assert tok.decode([-1, *hello, 2**40]) == "hello"
    assert isinstance(tok.encode("x"), Encoding)


def _raises(folder: Path, *fragments: str) -> str:
    with pytest.raises(LmtuiError) as info:
        load_tokenizer(folder)
    message = str(info.value)
    assert type(info.value) is LmtuiError and "\n" not in message and "Traceback" not in message
    assert info.value.__cause__ is None and (info.value.__context__ is None or info.value.__suppress_context__)
    for fragment in fragments:
        assert fragment in message
    return message


def test_empty_folder(tmp_path: Path) -> None:
    _raises(tmp_path, str(tmp_path), "tokenizer.json", "vocab.json + merges.txt", "vocab.txt")


def test_sentencepiece_only_folder(tmp_path: Path) -> None:
    (tmp_path / "tokenizer.model").write_bytes(b"\x0a\x05hello")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "LlamaTokenizer"}))
    _raises(tmp_path, "tokenizer.model", "needs tokenizer.json", "save_pretrained", str(tmp_path))
    (tmp_path / "tokenizer.model").unlink()
    (tmp_path / "source.spm").write_bytes(b"x")  # Marian's files are read without tokenizer.json
    _raises(tmp_path, "source.spm", "not a valid SentencePiece model")


@pytest.mark.parametrize("content", ["{not json", "{}", '{"model": {"type": "BPE", "vocab": 3}}', "\xff\xfe"])
def test_corrupt_tokenizer_json(tmp_path: Path, content: str) -> None:
    (tmp_path / "tokenizer.json").write_text(content, encoding="latin-1")
    _raises(tmp_path, str(tmp_path / "tokenizer.json"))


def test_corrupt_side_files(folders: dict[str, Path], tmp_path: Path) -> None:
    for bad, fragment in (("tokenizer_config.json", "{oops"), ("config.json", "[1, 2]"),
                          ("special_tokens_map.json", "nope")):
        folder = tmp_path / bad
        folder.mkdir()
        (folder / "tokenizer.json").write_text((folders["gpt2"] / "tokenizer.json").read_text())
        (folder / bad).write_text(fragment)
        _raises(folder, str(folder / bad))
    files = _files_only(folders["gpt2"], tmp_path / "bad-vocab")
    (files / "vocab.json").write_text("{broken")
    (files / "merges.txt").write_text("#version: 0.2\na b\n")
    _raises(files, "vocab.json")
    wordpiece = tmp_path / "bad-vocab-txt"
    wordpiece.mkdir()
    (wordpiece / "vocab.txt").write_bytes(b"[UNK]\n\xff\xfe\n")
    _raises(wordpiece, "vocab.txt")


def test_unusable_special_token_names_the_settings_file(folders: dict[str, Path], tmp_path: Path) -> None:
    folder = _files_only(folders["gpt2"], tmp_path / "odd", backend=None)
    for name in ("vocab.json", "merges.txt"):
        (folder / name).write_text((folders["gpt2-files"] / name).read_text())
    _edit_json(folder / "tokenizer_config.json", bos_token="<odd bos>", add_bos_token=True)
    _raises(folder, str(folder / "tokenizer_config.json"))


def test_importing_the_tokenizer_does_not_import_torch() -> None:
    code = "import sys, lmtui.tokenizer, lmtui.generation_defaults; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
