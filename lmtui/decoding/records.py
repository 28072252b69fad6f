"""What a generation run returns: the sequences, and a record of every step for inspection.

Plain dataclasses of ints and floats (no torch here), so the app can draw candidate bars and beam
trees before torch has even loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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
