"""`lmtui generate`: the same tokens as transformers.generate, the JSON contract, usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from transformers import AutoModelForCausalLM, AutoTokenizer

from lmtui.cli import main

PROMPT = "The quick brown fox"


def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["generate", *args], input=stdin)
    return result.exit_code, result.stdout, result.stderr


def generate_json(folder: Path, *args: str) -> dict:
    code, out, err = run(PROMPT, "-m", str(folder), "--json", *args)
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def reference(gpt2_folder: Path):
    model = AutoModelForCausalLM.from_pretrained(gpt2_folder).eval()
    ids = AutoTokenizer.from_pretrained(gpt2_folder)(PROMPT, return_tensors="pt")["input_ids"]

    def their_tokens(**kwargs) -> list[list[int]]:
        out = model.generate(ids, attention_mask=torch.ones_like(ids), pad_token_id=0, **kwargs)
        rows = [row[ids.shape[1] :] for row in out.tolist()]
        return [row[: row.index(0) + 1] if 0 in row else row for row in rows]  # eos (= pad) is 0

    return ids[0].tolist(), their_tokens


def test_greedy_json_equals_transformers(gpt2_folder: Path, reference) -> None:
    prompt_ids, their_tokens = reference
    data = generate_json(gpt2_folder, "--max-new-tokens", "10")
    assert {"sequences", "prompt_token_ids", "strategy"} <= data.keys()
    assert data["strategy"] == "greedy" and data["prompt_token_ids"] == prompt_ids
    (sequence,) = data["sequences"]
    assert {"text", "token_ids", "score"} <= sequence.keys()
    assert sequence["token_ids"] == their_tokens(max_new_tokens=10, do_sample=False)[0]


def test_beam_json_equals_transformers(gpt2_folder: Path, reference) -> None:
    _, their_tokens = reference
    data = generate_json(gpt2_folder, "--strategy", "beam", "--num-beams", "3", "--num-return-sequences", "2",
                         "--max-new-tokens", "8", "--length-penalty", "0.5")
    expected = their_tokens(max_new_tokens=8, num_beams=3, num_return_sequences=2, length_penalty=0.5,
                            do_sample=False)
    assert [s["token_ids"] for s in data["sequences"]] == expected


def test_seeded_sampling_is_reproducible_and_matches_transformers(gpt2_folder: Path, reference) -> None:
    _, their_tokens = reference
    args = ("--strategy", "sample", "--seed", "5", "--top-k", "20", "--temperature", "1.4", "--max-new-tokens", "8")
    first, second = generate_json(gpt2_folder, *args), generate_json(gpt2_folder, *args)
    assert first["sequences"] == second["sequences"]
    torch.manual_seed(5)
    expected = their_tokens(max_new_tokens=8, do_sample=True, top_k=20, temperature=1.4)
    assert first["sequences"][0]["token_ids"] == expected[0]


def test_streamed_text_equals_json_text(gpt2_folder: Path) -> None:
    data = generate_json(gpt2_folder, "--max-new-tokens", "12")
    code, out, _ = run(PROMPT, "-m", str(gpt2_folder), "--max-new-tokens", "12")
    assert code == 0 and out == data["sequences"][0]["text"] + "\n"


def test_prompt_from_stdin(gpt2_folder: Path) -> None:
    code, out, _ = run("-m", str(gpt2_folder), "--json", "--max-new-tokens", "3", stdin=PROMPT)
    assert code == 0 and json.loads(out)["prompt"] == PROMPT
    code, out, _ = run("-", "-m", str(gpt2_folder), "--json", "--max-new-tokens", "3", stdin=PROMPT)
    assert code == 0 and json.loads(out)["prompt"] == PROMPT


def test_stop_string_ends_the_text(gpt2_folder: Path) -> None:
    full = generate_json(gpt2_folder, "--max-new-tokens", "12")["sequences"][0]["text"]
    stop = full[3:5]
    assert stop.strip(), f"generated text too short to pick a stop string from: {full!r}"
    (sequence,) = generate_json(gpt2_folder, "--max-new-tokens", "12", "--stop", stop)["sequences"]
    assert sequence["finish_reason"] == "stop"
    assert sequence["text"] == full[: full.index(stop) + len(stop)]


def test_several_sequences_are_listed_in_text_mode(gpt2_folder: Path) -> None:
    code, out, _ = run(PROMPT, "-m", str(gpt2_folder), "--strategy", "beam", "--num-beams", "3",
                       "--num-return-sequences", "3", "--max-new-tokens", "4")
    assert code == 0 and out.count("--- ") == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--strategy", "beam", "--num-beams", "0"), "--num-beams must be 1 or more"),
        (("--strategy", "sample", "--temperature", "0"), "--temperature must be above 0"),
        (("--top-p", "1.5"), r"--top-p must be in (0, 1]"),
        (("--top-p", "0"), r"--top-p must be in (0, 1]"),
        (("--max-new-tokens", "-1"), "--max-new-tokens must be 0 or more"),
        (("--strategy", "beam", "--num-beams", "2", "--num-return-sequences", "3"), "cannot exceed --num-beams"),
        (("--max-new-tokens", "100"), "leaves room for"),
    ],
)
def test_invalid_options_are_one_line_usage_errors(gpt2_folder: Path, args: tuple[str, ...], message: str) -> None:
    code, out, err = run(PROMPT, "-m", str(gpt2_folder), "--json", *args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err


def test_prompt_longer_than_context_is_a_usage_error(gpt2_folder: Path) -> None:
    code, _, err = run("word " * 200, "-m", str(gpt2_folder), "--max-new-tokens", "1")
    assert code == 2 and "this model reads at most 64" in err and err.count("\n") == 1


def test_bad_choice_is_a_usage_error(gpt2_folder: Path) -> None:
    code, _, err = run(PROMPT, "-m", str(gpt2_folder), "--strategy", "nucleus")
    assert code == 2 and "Invalid value for '--strategy'" in err


def test_steps_in_json(gpt2_folder: Path) -> None:
    data = generate_json(gpt2_folder, "--max-new-tokens", "3", "--steps")
    assert [step["token_id"] for step in data["steps"]] == data["sequences"][0]["token_ids"]
    assert all(step["kind"] == "TokenStep" and step["after"] for step in data["steps"])
    beams = generate_json(gpt2_folder, "--strategy", "beam", "--max-new-tokens", "3", "--steps")
    assert beams["steps"] and all(step["kind"] == "BeamStep" for step in beams["steps"])
