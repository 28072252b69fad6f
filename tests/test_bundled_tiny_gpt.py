"""The bundled default model `weights/tiny-gpt` and the script that trains it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
from click.testing import CliRunner
from transformers import AutoModelForCausalLM, AutoTokenizer

from helpers_models import assert_logits_match, load_ours
from lmtui.checkpoint import DEFAULT_MODEL
from lmtui.cli import main
from lmtui.tokenizer import load_tokenizer

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "The with statement"


def assert_same_as_transformers(folder: Path, text: str) -> None:
    """lmtui and transformers read the folder alike: the same token ids and logits within 1e-4."""
    ids = load_tokenizer(folder).encode(text).ids
    assert list(ids) == AutoTokenizer.from_pretrained(folder)(text)["input_ids"]
    batch = torch.tensor([ids])
    with torch.no_grad():
        theirs = AutoModelForCausalLM.from_pretrained(folder).eval()(batch).logits
        assert_logits_match(load_ours(folder)(batch), theirs)


def test_default_model_is_the_bundled_tiny_gpt() -> None:
    assert DEFAULT_MODEL == ROOT / "weights" / "tiny-gpt"
    names = {p.name for p in DEFAULT_MODEL.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json", "README.md"} <= names
    assert sum(p.stat().st_size for p in DEFAULT_MODEL.iterdir()) < 13 * 2**20


def test_bundled_checkpoint_equals_transformers() -> None:
    assert_same_as_transformers(DEFAULT_MODEL, "A list is a mutable sequence; Return the value of x.")


def test_generate_without_model_uses_bundled_checkpoint() -> None:
    result = CliRunner().invoke(main, ["generate", PROMPT, "--json", "--max-new-tokens", "8"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["prompt_token_ids"] == AutoTokenizer.from_pretrained(DEFAULT_MODEL)(PROMPT)["input_ids"]
    assert data["strategy"] == "greedy"
    (sequence,) = data["sequences"]
    assert 0 < len(sequence["token_ids"]) <= 8 and sequence["text"].strip()


def test_training_script_smoke_mode_writes_a_loadable_folder(tmp_path: Path) -> None:
    out = tmp_path / "tiny"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "train_tiny_gpt.py"), "--smoke", "--out", str(out)],
                   check=True, capture_output=True, text=True, timeout=120)
    report = json.loads((out / "training.json").read_text())
    assert set(report["final_loss"]) == {"train", "validation"}
    assert json.loads((out / "generation_config.json").read_text())["do_sample"] is False
    assert_same_as_transformers(out, PROMPT)
