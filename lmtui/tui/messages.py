"""What the workers tell the app. Workers never touch widgets: they post these and return."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message

from lmtui.tui.state import Job, ModelSpec

if TYPE_CHECKING:
    from lmtui.decoding.records import BeamStep, TokenStep
    from lmtui.generation import GenerateResult
    from lmtui.masked import MaskPrediction
    from lmtui.session import ModelInfo, Session

# Each message names the model or job it is about: one that arrives after the user moved on is dropped.


@dataclass
class LoadProgress(Message):
    spec: ModelSpec
    done: int
    total: int


@dataclass
class ModelLoaded(Message):
    spec: ModelSpec
    session: Session
    info: ModelInfo


@dataclass
class LoadFailed(Message):
    spec: ModelSpec
    reason: str  # one line


@dataclass
class GenerationProgress(Message):
    """The text so far of the first sequence (empty while beam search runs) and the steps taken."""

    job: Job
    lane: str  # "output", or the strategy in a compare
    strategy: str
    text: str
    step: int
    max_steps: int
    records: tuple[TokenStep | BeamStep, ...]  # the steps' records so far, for the Steps view
    sequences: int  # how many sequences the run returns (rows of a sampled batch)


@dataclass
class GenerationDone(Message):
    job: Job
    lane: str
    result: GenerateResult
    perplexity: float | None = None  # the raw model's, on the output alone (compare lanes)


@dataclass
class GenerationFailed(Message):
    job: Job
    lane: str
    reason: str


@dataclass
class MasksFilled(Message):
    job: Job
    predictions: list[MaskPrediction]


@dataclass
class JobFinished(Message):
    """The worker is done, however it ended: the app is free for the next job."""

    job: Job
