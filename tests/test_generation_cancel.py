"""GenerationRun.cancel: a run stops after the step in progress and ends with what it has."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import torch

from lmtui.decoding.records import BeamStep
from lmtui.generation import beam_paths
from lmtui.session import Session

PROMPT = "The quick brown fox"


@pytest.fixture(scope="module")
def session(gpt2_folder: Path) -> Session:
    return Session(gpt2_folder, device="cpu")


def cancel_after(run: object, steps: int) -> list[str]:
    pieces = []
    for piece in run:
        pieces.append(piece)
        if len(run.steps) == steps:
            run.cancel()
    return pieces


def test_greedy_cancel_keeps_the_tokens_so_far(session: Session) -> None:
    run = session.stream(PROMPT, max_new_tokens=40)
    pieces = cancel_after(run, 3)
    (sequence,) = run.result.sequences
    assert sequence.finish_reason == "cancelled" and len(run.result.steps) == 3
    assert sequence.token_ids == [step.token_id for step in run.result.steps]
    assert sequence.score == pytest.approx(sum(step.logprob for step in run.result.steps))
    assert "".join(pieces) == sequence.text == session.tokenizer.decode(sequence.token_ids)
    full = session.generate(PROMPT, max_new_tokens=40).sequences[0]
    assert full.token_ids[:3] == sequence.token_ids


def test_every_step_yields_so_beam_search_can_be_followed(session: Session) -> None:
    run = session.stream(PROMPT, strategy="beam", num_beams=3, max_new_tokens=6)
    pieces = list(run)
    assert len(pieces) == len(run.result.steps) and set(pieces) == {""}
    assert all(isinstance(step, BeamStep) for step in run.steps)


def test_beam_cancel_returns_the_best_running_beams(session: Session) -> None:
    run = session.stream(PROMPT, strategy="beam", num_beams=3, num_return_sequences=2, max_new_tokens=40)
    cancel_after(run, 4)
    assert len(run.result.steps) == 4
    sequences = run.result.sequences
    assert [s.finish_reason for s in sequences] == ["cancelled", "cancelled"]
    assert all(len(s.token_ids) == 4 for s in sequences) and sequences[0].score >= sequences[1].score
    prompt_ids = run.result.prompt_token_ids
    for sequence in sequences:  # a running score is the sum of the path's log-probabilities
        ids = torch.tensor([prompt_ids + sequence.token_ids])
        with torch.inference_mode():
            logprobs = session.model(ids)[0, len(prompt_ids) - 1 : -1].float().log_softmax(-1)
        expected = logprobs.gather(1, torch.tensor(sequence.token_ids)[:, None]).sum().item()
        assert sequence.score == pytest.approx(expected, abs=1e-4)


def test_beam_paths_follow_parents() -> None:
    from lmtui.decoding.records import Hypothesis

    steps = [
        BeamStep(0, (Hypothesis(0, 5, -1.0, "running"), Hypothesis(0, 6, -1.5, "running"),
                     Hypothesis(0, 7, -2.0, "pruned"))),
        BeamStep(1, (Hypothesis(1, 8, -2.0, "running"), Hypothesis(0, 9, -2.5, "running"),
                     Hypothesis(0, 0, -1.2, "finished"))),
    ]
    assert beam_paths(steps) == [((6, 8), -2.0), ((5, 9), -2.5)]


def test_sampling_rows_are_cancelled_together(session: Session) -> None:
    run = session.stream(PROMPT, strategy="sample", seed=0, num_return_sequences=2, max_new_tokens=40)
    cancel_after(run, 6)  # 3 steps of 2 rows
    assert [len(s.token_ids) for s in run.result.sequences] == [3, 3]
    assert {s.finish_reason for s in run.result.sequences} == {"cancelled"}


def test_cancel_from_another_thread(session: Session) -> None:
    run = session.stream(PROMPT, max_new_tokens=50)
    started = threading.Event()

    def consume() -> None:
        for _ in run:
            started.set()
            time.sleep(0.02)  # a slow consumer, so the run cannot finish before the cancel lands

    worker = threading.Thread(target=consume)
    worker.start()
    started.wait(timeout=30)
    run.cancel()
    worker.join(timeout=30)
    assert not worker.is_alive() and run.result is not None
    assert run.result.sequences[0].finish_reason == "cancelled" and len(run.result.steps) < 50


def test_cancel_before_the_first_step(session: Session) -> None:
    run = session.stream(PROMPT, max_new_tokens=10)
    run.cancel()
    assert list(run) == []
    assert run.result.sequences[0].token_ids == [] and run.result.sequences[0].finish_reason == "cancelled"
