"""What a generation run returns: the sequences, and a record of every step for inspection.

Plain dataclasses of ints and floats, so the app can draw candidate bars and beam trees without torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import Tensor

FinishReason = Literal["eos", "length", "stop"]
HypothesisStatus = Literal["running", "finished", "pruned"]


@dataclass(frozen=True)
class Candidate:
    token_id: int
    prob: float


@dataclass(frozen=True)
class TokenStep:
    """One row's choice at one step of greedy search or sampling."""

    step: int
    row: int
    before: tuple[Candidate, ...]  # top candidates of the model's own distribution
    after: tuple[Candidate, ...]  # top candidates of the distribution chosen from (constraints, filters)
    token_id: int
    logprob: float  # of the chosen token, under `after`'s distribution


@dataclass(frozen=True)
class Hypothesis:
    """One continuation considered at one beam-search step."""

    parent: int  # the beam (at the previous step) it extends
    token_id: int
    score: float  # running sum of log-probabilities
    status: HypothesisStatus  # running: kept as a beam; finished: ended (eos); pruned: dropped


@dataclass(frozen=True)
class BeamStep:
    step: int
    hypotheses: tuple[Hypothesis, ...]  # running ones first, in beam order


@dataclass(frozen=True)
class Sequence:
    token_ids: tuple[int, ...]  # generated tokens only, with the final eos if one was made
    score: float  # beam: length-penalised score; greedy/sample: sum of chosen log-probabilities
    finish_reason: FinishReason


@dataclass(frozen=True)
class Generation:
    sequences: tuple[Sequence, ...]
    steps: tuple[TokenStep | BeamStep, ...]


def top_candidates(probs: Tensor, k: int) -> list[tuple[Candidate, ...]]:
    """The k most likely tokens of each row of probs (N, V), most likely first."""
    values, indices = probs.topk(min(k, probs.shape[-1]), dim=-1)  # (N, k)
    return [
        tuple(Candidate(token, prob) for token, prob in zip(row_ids, row_probs) if prob > 0)
        for row_ids, row_probs in zip(indices.tolist(), values.tolist())
    ]
