"""The bundled encoder-decoder `weights/tiny-seq2seq` (number words and dates to digits) and its training script."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
from click.testing import CliRunner
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from helpers_models import assert_logits_match, load_ours
from lmtui.cli import main
from lmtui.session import Session
from lmtui.tokenizer import load_tokenizer

ROOT = Path(__file__).resolve().parent.parent
FOLDER = ROOT / "weights" / "tiny-seq2seq"
SCRIPT = ROOT / "scripts" / "train_tiny_seq2seq.py"
HELD_OUT_SEED = 1234  # not a seed the training run uses: a sample of the held-out values it never saw
ANSWERS = {"seven thousand and twelve": "7012", "the fourth of July, 1999": "1999-07-04",
           "three hundred and forty-two": "342", "Ninety-nine thousand nine hundred ninety-nine": "99999"}


def load_task() -> ModuleType:
    """scripts/seq2seq_task.py, the generator the model was trained on (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("seq2seq_task", ROOT / "scripts" / "seq2seq_task.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


task = load_task()


@pytest.fixture(scope="module")
def theirs() -> torch.nn.Module:
    return AutoModelForSeq2SeqLM.from_pretrained(FOLDER).eval()


@pytest.fixture(scope="module")
def session() -> Session:
    return Session(FOLDER, device="cpu")


def assert_same_as_transformers(folder: Path, pairs: list[tuple[str, str]]) -> None:
    """Both libraries read the folder alike: the same ids for sources and targets, and teacher-forced
    logits (decoder start token, then the target shifted right) within 1e-4."""
    ours_tokenizer, their_tokenizer = load_tokenizer(folder), AutoTokenizer.from_pretrained(folder)
    model, reference = load_ours(folder), AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
    start = reference.config.decoder_start_token_id
    for source, target in pairs:
        ids, target_ids = their_tokenizer(source)["input_ids"], their_tokenizer(target)["input_ids"]
        assert list(ours_tokenizer.encode(source).ids) == ids
        assert list(ours_tokenizer.encode_target(target).ids) == target_ids
        src, dec = torch.tensor([ids]), torch.tensor([[start, *target_ids[:-1]]])
        with torch.no_grad():
            assert_logits_match(model(src, dec), reference(input_ids=src, decoder_input_ids=dec).logits)


def test_folder_is_a_small_bart_checkpoint() -> None:
    names = {p.name for p in FOLDER.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "generation_config.json", "training.json", "README.md"} <= names
    assert sum(p.stat().st_size for p in FOLDER.iterdir()) < 6.5 * 2**20
    config = json.loads((FOLDER / "config.json").read_text())
    assert config["model_type"] == "bart" and config["architectures"] == ["BartForConditionalGeneration"]
    generation = json.loads((FOLDER / "generation_config.json").read_text())
    assert generation["do_sample"] is False and generation["num_beams"] == 1


def test_bundled_checkpoint_equals_transformers() -> None:
    assert_same_as_transformers(FOLDER, list(ANSWERS.items()))


def test_each_word_and_digit_is_one_token() -> None:
    """What makes cross-attention readable: one source position per word, one output position per digit."""
    tokenizer = load_tokenizer(FOLDER)
    pieces = tokenizer.encode("Seven thousand and twelve").pieces
    assert pieces == ("<s>", "Seven", "Ġthousand", "Ġand", "Ġtwelve", "</s>")
    assert tokenizer.encode_target("1999-07-04").pieces[1:-1] == tuple("1999-07-04")


@pytest.mark.parametrize("source", list(ANSWERS))
def test_greedy_generation_equals_transformers(session: Session, theirs: torch.nn.Module, source: str) -> None:
    ours = session.generate(source).sequences[0]
    inputs = AutoTokenizer.from_pretrained(FOLDER)(source, return_tensors="pt")
    expected = theirs.generate(**inputs)[0, 1:].tolist()  # the checkpoint's own defaults; without the start token
    assert list(ours.token_ids) == expected[: expected.index(2) + 1]


def test_training_never_sees_the_held_out_values() -> None:
    held_out = task.examples(200, HELD_OUT_SEED, held_out=True)
    stream = task.stream(seed=0)
    trained = {next(stream)[1] for _ in range(20_000)}
    assert len(held_out) == 200 and all(task.is_held_out(target) for _, target in held_out)
    assert not trained & {target for _, target in held_out}
    assert any(target.isdigit() for _, target in held_out) and any("-" in target for _, target in held_out)


def test_held_out_exact_match_is_at_least_95_percent(session: Session) -> None:
    held_out = task.examples(200, HELD_OUT_SEED, held_out=True)
    wrong = [(source, target, out) for source, target in held_out
             if (out := session.generate(source).sequences[0].text) != target]
    assert len(wrong) <= 10, f"{len(wrong)} of 200 wrong, e.g. {wrong[:5]}"


@pytest.mark.parametrize(("source", "digits"), list(ANSWERS.items())[:3])
def test_cli_generate_answers(source: str, digits: str) -> None:
    result = CliRunner().invoke(main, ["generate", source, "-m", str(FOLDER), "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    (sequence,) = data["sequences"]
    assert sequence["text"] == digits and data["strategy"] == "greedy"
    assert sequence["token_ids"][0] == 0 and sequence["token_ids"][-1] == 2  # forced <s>, then </s>


def test_training_script_smoke_mode_writes_a_loadable_folder(tmp_path: Path) -> None:
    out = tmp_path / "tiny"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(out)],
                   check=True, capture_output=True, text=True, timeout=180, env=env)
    report = json.loads((out / "training.json").read_text())
    assert {"train_loss", "held_out_loss", "held_out_exact_match"} <= set(report["final"])
    assert json.loads((out / "generation_config.json").read_text())["do_sample"] is False
    assert_same_as_transformers(out, [("seven thousand and twelve", "7012"), ("March 9, 2024", "2024-03-09")])
