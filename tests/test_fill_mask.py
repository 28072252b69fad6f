"""Fill-mask against transformers' fill-mask pipeline, and the `lmtui fill-mask` command."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from tokenizers import Tokenizer as Backend
from tokenizers import models, normalizers, pre_tokenizers, trainers
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertForMaskedLM,
    BertModel,
    BertTokenizer,
    DistilBertConfig,
    DistilBertForMaskedLM,
    RobertaConfig,
    RobertaForMaskedLM,
    pipeline,
)

from conftest import CORPUS, roberta_tokenizer
from helpers_models import load_ours, randomize
from lmtui.cli import main
from lmtui.errors import InvalidOption, LmtuiError
from lmtui.masked import MaskPrediction, fill_mask
from lmtui.tokenizer import load_tokenizer

TOP_K = 5
SIZES = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48)
TEXTS = {
    "bert": ["The quick brown [MASK] jumps over the lazy dog.",
             "A language [MASK] reads a prompt one [MASK] at a time."],
    "roberta": ["The quick brown <mask> jumps over the lazy dog.",
                "A language<mask> reads a prompt one <mask> at a time."],
}
TEXTS["distilbert"] = TEXTS["bert"]


def wordpiece_vocab() -> dict[str, int]:
    backend = Backend(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    backend.train_from_iterator([CORPUS], trainers.WordPieceTrainer(vocab_size=200, special_tokens=specials,
                                                                     show_progress=False))
    return backend.get_vocab()


def save(folder: Path, model: torch.nn.Module, tokenizer: object) -> Path:
    randomize(model, std=0.5).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("fill-mask")
    bert_tokenizer = BertTokenizer(vocab=wordpiece_vocab())
    roberta = roberta_tokenizer()
    n_bert, n_roberta = len(bert_tokenizer), len(roberta)
    return {
        "bert": save(root / "bert", BertForMaskedLM(BertConfig(vocab_size=n_bert, **SIZES)), bert_tokenizer),
        "roberta": save(root / "roberta", RobertaForMaskedLM(RobertaConfig(vocab_size=n_roberta, **SIZES)), roberta),
        "distilbert": save(root / "distilbert", DistilBertForMaskedLM(DistilBertConfig(
            vocab_size=n_bert, dim=32, n_layers=2, n_heads=4, hidden_dim=48, activation="relu")), bert_tokenizer),
        "bert-bare": save(root / "bert-bare", BertModel(BertConfig(vocab_size=n_bert, **SIZES)), bert_tokenizer),
    }


def ours(folder: Path, text: str, top_k: int = TOP_K) -> list[MaskPrediction]:
    return fill_mask(load_ours(folder), load_tokenizer(folder), text, top_k)


@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert"])
def test_top_k_equals_the_transformers_pipeline(folders: dict[str, Path], family: str) -> None:
    folder = folders[family]
    reference = pipeline("fill-mask", model=str(folder), top_k=TOP_K, device="cpu")
    hf_tokenizer = AutoTokenizer.from_pretrained(folder)
    for text in TEXTS[family]:
        predictions = ours(folder, text)
        ids = hf_tokenizer(text)["input_ids"]
        assert [p.position for p in predictions] == [i for i, t in enumerate(ids) if t == hf_tokenizer.mask_token_id]
        expected = reference(text)
        expected = expected if isinstance(expected[0], list) else [expected]  # one list per mask
        assert len(predictions) == len(expected) == text.count("[MASK]") + text.count("<mask>")
        for prediction, rows in zip(predictions, expected):
            assert [c.id for c in prediction.candidates] == [row["token"] for row in rows]
            assert [c.text for c in prediction.candidates] == [row["token_str"] for row in rows]
            assert max(abs(c.prob - row["score"]) for c, row in zip(prediction.candidates, rows)) < 1e-5
            assert [c.piece for c in prediction.candidates] == hf_tokenizer.convert_ids_to_tokens(
                [row["token"] for row in rows])


def test_candidates_are_sorted_and_top_k_is_capped(folders: dict[str, Path]) -> None:
    (prediction,) = ours(folders["roberta"], TEXTS["roberta"][0], top_k=10**6)
    probs = [c.prob for c in prediction.candidates]
    assert len(probs) == load_ours(folders["roberta"]).config.vocab_size
    assert probs == sorted(probs, reverse=True) and abs(sum(probs) - 1) < 1e-4


def test_text_without_a_mask_names_the_mask_token(folders: dict[str, Path]) -> None:
    with pytest.raises(InvalidOption, match=r"no mask token: type \[MASK\] where"):
        ours(folders["bert"], "The quick brown fox.")
    with pytest.raises(InvalidOption, match="no mask token: type <mask> where"):
        ours(folders["roberta"], "The quick brown [MASK].")


def test_model_without_head_or_tokenizer_without_mask_is_refused(folders: dict[str, Path], gpt2_folder: Path) -> None:
    with pytest.raises(LmtuiError, match="needs an encoder with a masked-language-model head .* has none"):
        ours(folders["bert-bare"], TEXTS["bert"][0])
    with pytest.raises(LmtuiError, match="this model is not an encoder"):
        fill_mask(load_ours(gpt2_folder), load_tokenizer(gpt2_folder), "a [MASK]")
    tokenizer = load_tokenizer(folders["bert"])
    tokenizer.special = replace(tokenizer.special, mask=None)
    with pytest.raises(LmtuiError, match="the tokenizer has no mask token"):
        fill_mask(load_ours(folders["bert"]), tokenizer, TEXTS["bert"][0])


def test_too_long_text_and_bad_top_k_are_refused(folders: dict[str, Path]) -> None:
    with pytest.raises(InvalidOption, match="the text is 1002 tokens; this model reads at most 512"):
        ours(folders["bert"], "[MASK] " * 1000)
    with pytest.raises(InvalidOption, match="top_k must be at least 1"):
        ours(folders["bert"], TEXTS["bert"][0], top_k=0)


def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_cli_json_is_the_python_api(folders: dict[str, Path]) -> None:
    text = TEXTS["roberta"][1]
    code, out, _ = run("fill-mask", "-m", str(folders["roberta"]), text, "--json", "--top-k", "3")
    assert code == 0
    data = json.loads(out)
    expected = ours(folders["roberta"], text, top_k=3)
    assert [m["position"] for m in data["masks"]] == [p.position for p in expected]
    for mask, prediction in zip(data["masks"], expected):
        assert {"id", "piece", "prob"} <= mask["candidates"][0].keys()
        assert [c["id"] for c in mask["candidates"]] == [c.id for c in prediction.candidates]
        assert [c["prob"] for c in mask["candidates"]] == pytest.approx([c.prob for c in prediction.candidates])


def test_cli_text_from_stdin(folders: dict[str, Path]) -> None:
    code, out, _ = run("fill-mask", "-m", str(folders["bert"]), stdin=TEXTS["bert"][1])
    (first, second) = ours(folders["bert"], TEXTS["bert"][1])
    assert code == 0 and out.count("mask at token") == 2
    assert f"mask at token {first.position}:" in out and f"mask at token {second.position}:" in out
    assert f"{first.candidates[0].piece} (id {first.candidates[0].id})" in out


def test_cli_errors_are_one_line(folders: dict[str, Path]) -> None:
    code, out, err = run("fill-mask", "-m", str(folders["bert"]), "no mask here")
    assert code == 2 and out == "" and err.startswith("Error: the text has no mask token: type [MASK]")
    assert err.count("\n") == 1
    code, _, err = run("fill-mask", "-m", str(folders["bert-bare"]), TEXTS["bert"][0])
    assert code == 1 and "masked-language-model head" in err and err.count("\n") == 1
    code, _, err = run("fill-mask", "-m", str(folders["bert"]), TEXTS["bert"][0], "--top-k", "0")
    assert code == 2 and "--top-k" in err
