"""The bundled encoder `weights/tiny-bert` and the script that trains it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open
from transformers import AutoModelForMaskedLM, AutoTokenizer, BertForMaskedLM, pipeline

from helpers_models import assert_logits_match, load_ours
from lmtui.cli import main
from lmtui.tokenizer import load_tokenizer

ROOT = Path(__file__).resolve().parent.parent
FOLDER = ROOT / "weights" / "tiny-bert"
WITH = 'The "[MASK]" statement is used to wrap the execution of a block.'  # quoted, as the docs write it
CALLABLE = "Return [MASK] if the object is callable, False otherwise."
TEXTS = (
    "The [MASK] statement is used to wrap the execution of a block.",
    "If the key is not found, [MASK] is raised; see ValueError and None.",
    "Return a new [MASK] containing the items of the iterable, e.g. [1, 2] or café (ünïcode) 🐍.",
)


def transformers_model(folder: Path) -> BertForMaskedLM:
    """The folder as transformers loads it, failing on any missing, unexpected or mis-shaped tensor."""
    model, info = AutoModelForMaskedLM.from_pretrained(folder, output_loading_info=True)
    problems = {key: value for key, value in info.items() if value}
    assert not problems, f"transformers does not read this as a BertForMaskedLM save: {problems}"
    assert isinstance(model, BertForMaskedLM)
    return model.eval()


def assert_same_as_transformers(folder: Path, texts: tuple[str, ...]) -> None:
    """lmtui and transformers read the folder alike: the same token ids and logits within 1e-4."""
    theirs_tokenizer, ours_tokenizer = AutoTokenizer.from_pretrained(folder), load_tokenizer(folder)
    assert theirs_tokenizer.mask_token == "[MASK]" and ours_tokenizer.special.mask is not None
    reference, ours = transformers_model(folder), load_ours(folder)
    for text in texts:
        ids = theirs_tokenizer(text)["input_ids"]
        assert list(ours_tokenizer.encode(text).ids) == ids
        assert ids[0] == theirs_tokenizer.cls_token_id and ids[-1] == theirs_tokenizer.sep_token_id
        batch = torch.tensor([ids])
        with torch.no_grad():
            assert_logits_match(ours(batch), reference(batch).logits)


def test_bundled_folder_is_a_small_bert_masked_lm_save() -> None:
    names = {p.name for p in FOLDER.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "training.json",
            "README.md"} <= names
    assert "generation_config.json" not in names  # BertForMaskedLM.save_pretrained writes none
    assert sum(p.stat().st_size for p in FOLDER.iterdir()) < 8.5 * 2**20
    config = json.loads((FOLDER / "config.json").read_text())
    assert (config["model_type"], config["architectures"]) == ("bert", ["BertForMaskedLM"])
    with safe_open(FOLDER / "model.safetensors", "pt") as f:
        names = set(f.keys())
    # transformers leaves the tied decoder out of the file; the head's own layers are there
    assert not any(name.startswith("cls.predictions.decoder.") for name in names)
    assert {"cls.predictions.bias", "cls.predictions.transform.dense.weight"} <= names


def test_bundled_checkpoint_equals_transformers() -> None:
    assert_same_as_transformers(FOLDER, TEXTS)


def test_fill_mask_json_equals_the_transformers_pipeline() -> None:
    reference = pipeline("fill-mask", model=str(FOLDER), top_k=5, device="cpu")
    for text in TEXTS:
        result = CliRunner().invoke(main, ["fill-mask", "-m", str(FOLDER), text, "--json"])
        assert result.exit_code == 0, result.stderr
        (mask,) = json.loads(result.stdout)["masks"]
        rows = reference(text)
        assert [c["id"] for c in mask["candidates"]] == [row["token"] for row in rows]
        assert [c["prob"] for c in mask["candidates"]] == pytest.approx([row["score"] for row in rows], abs=1e-5)


def top_pieces(text: str) -> list[str]:
    result = CliRunner().invoke(main, ["fill-mask", "-m", str(FOLDER), text, "--json"])
    assert result.exit_code == 0, result.stderr
    (mask,) = json.loads(result.stdout)["masks"]
    return [c["piece"] for c in mask["candidates"]]


def test_fill_mask_without_a_model_opens_the_bundled_encoder() -> None:
    result = CliRunner().invoke(main, ["fill-mask", CALLABLE, "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["masks"][0]["candidates"][0]["piece"] == top_pieces(CALLABLE)[0]


def test_bundled_model_has_learned_the_docs() -> None:
    """A trained model, not a random one: it fills in what Python's documentation says."""
    assert top_pieces(CALLABLE)[0] == "True"
    assert "with" in top_pieces(WITH)
    training = json.loads((FOLDER / "training.json").read_text())
    assert training["final"]["validation"]["accuracy"] > 0.3


def test_training_script_smoke_mode_writes_a_loadable_folder(tmp_path: Path) -> None:
    out = tmp_path / "tiny"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    subprocess.run([sys.executable, str(ROOT / "scripts" / "train_tiny_bert.py"), "--smoke", "--out", str(out)],
                   check=True, capture_output=True, text=True, timeout=120, env=env)
    report = json.loads((out / "training.json").read_text())
    assert set(report["final"]) == {"train", "validation"}
    assert set(report["final"]["validation"]) == {"loss", "accuracy"}
    assert not (out / "generation_config.json").exists()
    assert_same_as_transformers(out, ("The [MASK] statement.",))  # the smoke model reads 32 tokens
