"""Greedy search and sampling equal transformers.generate on the same random checkpoints."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM
from transformers.generation.logits_process import (
    MinPLogitsWarper,
    RepetitionPenaltyLogitsProcessor,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from conftest import save_gpt2
from helpers_models import load_ours, randomize
from lmtui.decoding import processors
from lmtui.decoding.records import Sequence, TokenStep
from lmtui.decoding.search import token_search
from lmtui.decoding.settings import GenerationSettings
from lmtui.decoding.stepper import DecoderStepper
from lmtui.errors import LmtuiError

PROMPT = [11, 42, 7, 99, 23]
NEW = 12


def save_llama(folder: Path) -> Path:
    config = LlamaConfig(vocab_size=320, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=128)
    randomize(LlamaForCausalLM(config), std=0.15).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp(request.param)
    save_gpt2(folder) if request.param == "gpt2" else save_llama(folder)
    return load_ours(folder), AutoModelForCausalLM.from_pretrained(folder).eval()


def run(model: torch.nn.Module, settings: GenerationSettings, stop=None):
    search = token_search(DecoderStepper(model, PROMPT, settings.max_new_tokens), PROMPT, settings, stop=stop)
    steps: list[TokenStep] = []
    while True:
        try:
            steps.append(next(search))
        except StopIteration as done:
            sequences: list[Sequence] = done.value
            return sequences, steps


def reference(theirs: torch.nn.Module, eos: int, **kwargs) -> list[list[int]]:
    """transformers' generated tokens per row, padding after eos removed."""
    out = theirs.generate(torch.tensor([PROMPT]), max_new_tokens=NEW, eos_token_id=eos, pad_token_id=eos, **kwargs)
    rows = []
    for row in out[:, len(PROMPT) :].tolist():
        rows.append(row[: row.index(eos) + 1] if eos in row else row)
    return rows


def greedy_tokens(theirs: torch.nn.Module) -> list[int]:
    return theirs.generate(torch.tensor([PROMPT]), max_new_tokens=NEW, do_sample=False,
                           eos_token_id=None, pad_token_id=0)[0, len(PROMPT) :].tolist()


GREEDY_GRID = {
    "plain": {},
    "repetition-penalty": {"repetition_penalty": 1.5},
    "no-repeat-2-gram": {"no_repeat_ngram_size": 2},
    "no-repeat-1-gram": {"no_repeat_ngram_size": 1},
    "min-new-tokens": {"min_new_tokens": 6},
    "forced-eos": {"forced_eos_token_id": "eos"},
}


@pytest.mark.parametrize("name", list(GREEDY_GRID))
def test_greedy_equals_transformers(pair, name: str) -> None:
    ours, theirs = pair
    # eos: the model's own 4th greedy token, so plain greedy really stops mid-way
    eos = greedy_tokens(theirs)[3]
    options = {key: (eos if value == "eos" else value) for key, value in GREEDY_GRID[name].items()}
    expected = reference(theirs, eos, do_sample=False, **options)[0]
    settings = GenerationSettings(max_new_tokens=NEW, eos_token_ids=(eos,), pad_token_id=eos,
                                  forced_eos_token_ids=(eos,) if "forced_eos_token_id" in options else (),
                                  **{k: v for k, v in options.items() if k != "forced_eos_token_id"})
    sequences, steps = run(ours, settings)
    assert list(sequences[0].token_ids) == expected
    assert [step.token_id for step in steps] == expected
    if name == "plain":
        assert expected[-1] == eos and len(expected) < NEW and sequences[0].finish_reason == "eos"
    if name == "min-new-tokens":
        assert eos not in expected[:6]


def test_greedy_without_eos_runs_to_length(pair) -> None:
    ours, theirs = pair
    sequences, _ = run(ours, GenerationSettings(max_new_tokens=NEW))
    assert list(sequences[0].token_ids) == greedy_tokens(theirs)
    assert sequences[0].finish_reason == "length"


FILTER_GRID = {
    "temperature": {"temperature": 0.6, "top_k": 0},
    "top-k": {"top_k": 5},
    "top-p": {"top_p": 0.8, "top_k": 0},
    "min-p": {"min_p": 0.1, "top_k": 0},
    "all-filters": {"temperature": 1.3, "top_k": 30, "top_p": 0.9, "min_p": 0.05},
    "penalties-and-filters": {"repetition_penalty": 1.3, "no_repeat_ngram_size": 2, "top_k": 20, "top_p": 0.7},
    "repetition-penalty-alone": {"repetition_penalty": 1.7, "top_k": 0},
}


@pytest.mark.parametrize("name", list(FILTER_GRID))
def test_sampling_distribution_equals_transformers_processors(pair, name: str) -> None:
    """At every step transformers sampled, the distribution we would sample from is theirs."""
    ours, theirs = pair
    options = FILTER_GRID[name]
    torch.manual_seed(0)
    out = theirs.generate(torch.tensor([PROMPT]), max_new_tokens=NEW, do_sample=True, eos_token_id=None,
                          pad_token_id=0, output_scores=True, output_logits=True, return_dict_in_generate=True,
                          **options)
    settings = GenerationSettings(strategy="sample", max_new_tokens=NEW, **options)
    chain = processors.constraints(settings, len(PROMPT)) + processors.filters(settings)
    narrowed = 0
    for step, (logits, their_scores) in enumerate(zip(out.logits, out.scores)):
        sequences = out.sequences[:, : len(PROMPT) + step]
        mine = processors.apply(chain, sequences, logits.float()).softmax(-1)
        torch.testing.assert_close(mine, their_scores.softmax(-1), atol=1e-6, rtol=0)
        narrowed += int((mine == 0).any())
    assert narrowed > 0 or name in ("temperature", "repetition-penalty-alone")  # the filters really removed tokens


# Exact boundaries: probabilities 0.5 / 0.25 / 0.125 / 0.125 and a tie for second place.
CRAFTED = torch.log(torch.tensor([[0.5, 0.25, 0.125, 0.125], [0.25, 0.5, 0.125, 0.125], [0.4, 0.3, 0.3, 0.0]]))


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (lambda s: processors.top_p(s, 0.5), TopPLogitsWarper(top_p=0.5)),
        (lambda s: processors.top_p(s, 0.75), TopPLogitsWarper(top_p=0.75)),
        (lambda s: processors.top_p(s, 0.875, min_tokens_to_keep=2), TopPLogitsWarper(0.875, min_tokens_to_keep=2)),
        (lambda s: processors.min_p(s, 0.5), MinPLogitsWarper(min_p=0.5)),
        (lambda s: processors.min_p(s, 0.25), MinPLogitsWarper(min_p=0.25)),
        (lambda s: processors.top_k(s, 2), TopKLogitsWarper(top_k=2)),
        (lambda s: processors.top_k(s, 1), TopKLogitsWarper(top_k=1)),
    ],
)
def test_filters_at_exact_boundaries_equal_transformers(ours, theirs) -> None:
    assert torch.equal(ours(CRAFTED.clone()), theirs(None, CRAFTED.clone()))


def test_repetition_penalty_equals_transformers_on_both_signs() -> None:
    scores = torch.tensor([[2.0, -2.0, 0.5, -0.5, 1.0]])
    sequences = torch.tensor([[0, 1, 1, 3]])
    expected = RepetitionPenaltyLogitsProcessor(penalty=2.0)(sequences, scores.clone())
    assert torch.equal(processors.repetition_penalty(sequences, scores, 2.0), expected)
    assert expected[0, 1] == -4.0 and expected[0, 0] == 1.0


def test_sampling_probabilities_recorded_per_step(pair) -> None:
    ours, _ = pair
    settings = GenerationSettings(strategy="sample", max_new_tokens=4, top_k=3, seed=1, record_top_k=5)
    _, steps = run(ours, settings)
    for step in steps:
        assert len(step.after) <= 3 and len(step.before) == 5
        assert step.token_id in {c.token_id for c in step.after}
        assert sum(c.prob for c in step.after) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("seed", [0, 7])
def test_seeded_sampling_is_reproducible_and_draws_what_transformers_draws(pair, seed: int) -> None:
    ours, theirs = pair
    settings = GenerationSettings(strategy="sample", max_new_tokens=NEW, num_return_sequences=3, seed=seed,
                                  top_k=40, temperature=1.5)
    first, _ = run(ours, settings)
    again, _ = run(ours, settings)
    assert first == again
    torch.manual_seed(seed)
    expected = reference(theirs, eos=-1, do_sample=True, top_k=40, temperature=1.5, num_return_sequences=3)
    assert [list(s.token_ids) for s in first] == expected
    other, _ = run(ours, replace(settings, seed=seed + 100))
    assert other != first


def test_stop_check_ends_a_row(pair) -> None:
    ours, _ = pair
    sequences, _ = run(ours, GenerationSettings(max_new_tokens=NEW))
    third = list(sequences[0].token_ids[:3])
    stopped, _ = run(ours, GenerationSettings(max_new_tokens=NEW), stop=lambda ids: ids[:3] == third)
    assert list(stopped[0].token_ids) == third and stopped[0].finish_reason == "stop"


def test_zero_new_tokens(pair) -> None:
    ours, _ = pair
    sequences, steps = run(ours, GenerationSettings(max_new_tokens=0))
    assert sequences[0].token_ids == () and steps == []


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (GenerationSettings(strategy="beam", num_beams=0), "--num-beams must be 1 or more"),
        (GenerationSettings(strategy="sample", temperature=0.0), "--temperature must be above 0"),
        (GenerationSettings(top_p=0.0), r"--top-p must be in \(0, 1\]"),
        (GenerationSettings(top_p=1.5), r"--top-p must be in \(0, 1\]"),
        (GenerationSettings(max_new_tokens=-1), "--max-new-tokens must be 0 or more"),
        (GenerationSettings(strategy="beam", num_beams=2, num_return_sequences=3), "cannot exceed --num-beams"),
        (GenerationSettings(min_p=2.0), r"--min-p must be in \[0, 1\]"),
    ],
)
def test_invalid_settings(settings: GenerationSettings, message: str) -> None:
    with pytest.raises(LmtuiError, match=message):
        settings.validate()


def test_prompt_longer_than_context() -> None:
    with pytest.raises(LmtuiError, match="the prompt is 70 tokens; this model reads at most 64"):
        GenerationSettings().validate(prompt_len=70, context_length=64)
