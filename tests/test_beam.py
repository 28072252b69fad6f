"""Beam search equals transformers.generate(num_beams=...) on the same random checkpoints: the same
sequences in the same order with the same `sequences_scores`, and step records that trace them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, StoppingCriteria, StoppingCriteriaList

from conftest import save_gpt2
from helpers_models import load_ours, randomize
from lmtui.decoding.beam import beam_search
from lmtui.decoding.records import BeamStep, Sequence
from lmtui.decoding.search import StopCheck, token_search
from lmtui.decoding.settings import GenerationSettings
from lmtui.decoding.stepper import DecoderStepper

PROMPT = [11, 42, 7, 99, 23]
NEW = 10
SCORE_TOL = 1e-4


def save_llama(folder: Path) -> Path:
    """Seed 3: with its 2nd favourite first token as eos, hypotheses end at several different steps."""
    config = LlamaConfig(vocab_size=320, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=64)
    randomize(LlamaForCausalLM(config), std=0.15, seed=3).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp(request.param)
    save_gpt2(folder) if request.param == "gpt2" else save_llama(folder)
    return load_ours(folder), AutoModelForCausalLM.from_pretrained(folder).eval()


def liked_tokens(theirs: torch.nn.Module) -> list[int]:
    """The model's favourite next tokens after the prompt, best first: the 2nd one makes a good eos,
    likely enough that hypotheses end at different steps, not so likely that the first step ends all."""
    with torch.no_grad():
        return theirs(torch.tensor([PROMPT])).logits[0, -1].topk(4).indices.tolist()


class TracingStepper(DecoderStepper):
    """A DecoderStepper that remembers how it was driven."""

    def __init__(self, model: torch.nn.Module, max_new_tokens: int) -> None:
        super().__init__(model, PROMPT, max_new_tokens)
        self.step_rows: list[int] = []
        self.reorders = 0

    def step(self, tokens: Tensor) -> Tensor:
        self.step_rows.append(len(tokens))
        return super().step(tokens)

    def reorder(self, rows: Tensor) -> None:
        self.reorders += 1
        super().reorder(rows)


def run_beam(model: torch.nn.Module, settings: GenerationSettings, stop: StopCheck | None = None):
    stepper = TracingStepper(model, settings.max_new_tokens)
    search = beam_search(stepper, PROMPT, settings, stop)
    steps: list[BeamStep] = []
    while True:
        try:
            steps.append(next(search))
        except StopIteration as done:
            sequences: list[Sequence] = done.value
            return sequences, steps, stepper


def generate(
    theirs: torch.nn.Module, options: dict[str, Any], stop_token: int | None = None, **extra: Any
) -> tuple[list[list[int]], list[float], int]:
    """transformers' beam search: generated tokens per returned row (padding after eos or the stop
    token cut), their scores, and how many steps it ran (when it stopped tells its early-stopping
    decisions apart)."""
    out = theirs.generate(torch.tensor([PROMPT]), do_sample=False, max_new_tokens=NEW, output_scores=True,
                          return_dict_in_generate=True, **options, **extra)
    eos = options["eos_token_id"] or []
    ending = [*(eos if isinstance(eos, list) else [eos]), stop_token]
    rows = []
    for row in out.sequences[:, len(PROMPT) :].tolist():
        ends = [i for i, token in enumerate(row) if token in ending]
        rows.append(row[: ends[0] + 1] if ends else row)
    return rows, out.sequences_scores.tolist(), len(out.scores)


def settings_for(options: dict[str, Any]) -> GenerationSettings:
    """Our settings for a dict of transformers.generate keyword arguments."""
    names = {"eos_token_id": "eos_token_ids", "forced_eos_token_id": "forced_eos_token_ids"}
    given = {names.get(key, key): value for key, value in options.items()}
    for key in ("eos_token_ids", "forced_eos_token_ids"):
        value = given.get(key)
        given[key] = () if value is None else tuple(value) if isinstance(value, list) else (value,)
    return GenerationSettings(strategy="beam", max_new_tokens=NEW, **given)


BASE = dict(num_beams=4, num_return_sequences=3, length_penalty=1.0, early_stopping=False)
GRID: dict[str, dict[str, Any]] = {
    **{f"lp{lp}-es-{es}": {"length_penalty": lp, "early_stopping": es}
       for lp in (0.5, 1.0, 2.0) for es in (True, False, "never")},
    "never-negative-lp": {"length_penalty": -0.5, "early_stopping": "never"},
    "one-returned": {"num_return_sequences": 1},
    "three-beams-all-returned": {"num_beams": 3, "num_return_sequences": 3, "length_penalty": 0.5},
    "no-repeat-2-gram": {"no_repeat_ngram_size": 2},
    "min-new-tokens": {"min_new_tokens": 4, "length_penalty": 0.5},
    "forced-eos": {"forced_eos_token_id": "eos"},
    "repetition-penalty": {"repetition_penalty": 1.5, "length_penalty": 0.5},
    "two-eos": {"eos_token_id": "two", "length_penalty": 0.5},
}


def options_for(theirs: torch.nn.Module, name: str) -> dict[str, Any]:
    liked = liked_tokens(theirs)
    options = {**BASE, "eos_token_id": liked[1], "pad_token_id": liked[1], **GRID[name]}
    if options.get("forced_eos_token_id") == "eos":
        options["forced_eos_token_id"] = liked[1]
    if options["eos_token_id"] == "two":
        options["eos_token_id"] = [liked[1], liked[2]]
    return options


@pytest.mark.parametrize("name", list(GRID))
def test_beam_search_equals_transformers(pair, name: str) -> None:
    ours, theirs = pair
    options = options_for(theirs, name)
    expected, expected_scores, expected_steps = generate(theirs, options)
    settings = settings_for(options)
    sequences, steps, _ = run_beam(ours, settings)
    assert [list(s.token_ids) for s in sequences] == expected
    assert [s.score for s in sequences] == pytest.approx(expected_scores, abs=SCORE_TOL)
    assert len(steps) == expected_steps
    assert_steps_consistent(steps, sequences, settings)
    # hypotheses really end mid-way, so the finished set is exercised, not only the length limit
    assert any(h.status == "finished" for step in steps[:-1] for h in step.hypotheses)
    if name == "min-new-tokens":
        assert all(h.status != "finished" for step in steps[:4] for h in step.hypotheses)
    if settings.length_penalty <= 0.5:  # short hypotheses are favoured: an eos-ended one is returned
        assert any(s.finish_reason == "eos" and len(s.token_ids) < NEW for s in sequences)


def assert_steps_consistent(steps: list[BeamStep], sequences: list[Sequence], settings: GenerationSettings) -> None:
    """Each step lists every considered continuation; following parents back rebuilds every returned
    sequence that ended at a finished hypothesis, with its un-penalised score."""
    nb, keep = settings.num_beams, max(2, 1 + len(settings.eos_token_ids)) * settings.num_beams
    paths: list[list[int]] = [[]]  # tokens of each running beam of the previous step
    finished: dict[tuple[int, ...], float] = {}
    for index, step in enumerate(steps):
        assert step.step == index and len(step.hypotheses) == keep
        running = [h for h in step.hypotheses if h.status == "running"]
        assert step.hypotheses[: len(running)] == tuple(running)  # running first
        assert len(running) == (nb if index < settings.max_new_tokens - 1 else 0)
        for hypothesis in step.hypotheses:
            assert 0 <= hypothesis.parent < len(paths)
            if hypothesis.status == "finished":
                path = (*paths[hypothesis.parent], hypothesis.token_id)
                finished[path] = hypothesis.score
                assert hypothesis.token_id in settings.eos_token_ids or len(path) == settings.max_new_tokens
        paths = [paths[h.parent] + [h.token_id] for h in running]
    for sequence in sequences:
        assert sequence.token_ids in finished
        penalised = finished[sequence.token_ids] / len(sequence.token_ids) ** settings.length_penalty
        assert sequence.score == pytest.approx(penalised, abs=1e-5)
        ended_by_eos = sequence.token_ids[-1] in settings.eos_token_ids
        assert sequence.finish_reason == ("eos" if ended_by_eos else "length")


def test_hypotheses_advance_in_one_batched_step(pair) -> None:
    ours, theirs = pair
    settings = settings_for(options_for(theirs, "lp1.0-es-never"))
    _, steps, stepper = run_beam(ours, settings)
    assert stepper.step_rows == [settings.num_beams] * (len(steps) - 1)
    assert 0 < stepper.reorders <= len(steps) - 1


def test_without_eos_every_sequence_runs_to_length(pair) -> None:
    ours, theirs = pair
    options = {**BASE, "eos_token_id": None, "pad_token_id": 0}
    expected, expected_scores, _ = generate(theirs, options)
    sequences, steps, _ = run_beam(ours, settings_for(options))
    assert [list(s.token_ids) for s in sequences] == expected
    assert [s.score for s in sequences] == pytest.approx(expected_scores, abs=SCORE_TOL)
    assert len(steps) == NEW and all(s.finish_reason == "length" for s in sequences)


class LastTokenIs(StoppingCriteria):
    """transformers' side of a stop check that fires on one token."""

    def __init__(self, token: int) -> None:
        self.token = token

    def __call__(self, input_ids: Tensor, scores: Any, **kwargs: Any) -> Tensor:
        return input_ids[:, -1] == self.token


def test_stop_check_ends_hypotheses_like_a_stopping_criterion(pair) -> None:
    ours, theirs = pair
    liked = liked_tokens(theirs)
    options = {**BASE, "eos_token_id": liked[1], "pad_token_id": liked[1], "length_penalty": 0.5}
    criteria = StoppingCriteriaList([LastTokenIs(liked[2])])
    expected, expected_scores, _ = generate(theirs, options, stop_token=liked[2], stopping_criteria=criteria)
    sequences, _, _ = run_beam(ours, settings_for(options), stop=lambda ids: ids[-1] == liked[2])
    assert [list(s.token_ids) for s in sequences] == expected
    assert [s.score for s in sequences] == pytest.approx(expected_scores, abs=SCORE_TOL)
    assert any(s.finish_reason == "stop" and s.token_ids[-1] == liked[2] for s in sequences)


@pytest.mark.parametrize("with_eos", [True, False])
def test_one_beam_is_greedy(pair, with_eos: bool) -> None:
    ours, _ = pair
    greedy = GenerationSettings(max_new_tokens=NEW)
    plain = list(run_greedy(ours, greedy)[0].token_ids)
    eos = (plain[3],) if with_eos else ()
    greedy = GenerationSettings(max_new_tokens=NEW, eos_token_ids=eos)
    expected = run_greedy(ours, greedy)[0]
    settings = GenerationSettings(strategy="beam", num_beams=1, max_new_tokens=NEW, eos_token_ids=eos)
    sequences, _, _ = run_beam(ours, settings)
    assert sequences[0].token_ids == expected.token_ids
    assert sequences[0].finish_reason == expected.finish_reason == ("eos" if with_eos else "length")
    assert sequences[0].score == pytest.approx(expected.score / len(expected.token_ids), abs=1e-5)


def run_greedy(model: torch.nn.Module, settings: GenerationSettings) -> list[Sequence]:
    search = token_search(DecoderStepper(model, PROMPT, settings.max_new_tokens), PROMPT, settings)
    while True:
        try:
            next(search)
        except StopIteration as done:
            return done.value


def test_zero_new_tokens(pair) -> None:
    ours, _ = pair
    settings = GenerationSettings(strategy="beam", num_beams=4, num_return_sequences=2, max_new_tokens=0)
    sequences, steps, _ = run_beam(ours, settings)
    assert steps == [] and [s.token_ids for s in sequences] == [(), ()]
