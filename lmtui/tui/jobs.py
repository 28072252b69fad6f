"""The blocking calls, run in thread workers: load a session, stream a generation, fill masks.

Each takes a `post` callable and reports only through messages, so it never touches a widget from
the wrong thread. torch arrives with `lmtui.session`, imported here on first use, after the first frame.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from textual.message import Message

from lmtui.errors import LmtuiError
from lmtui.tui.messages import (
    GenerationDone,
    GenerationFailed,
    GenerationProgress,
    LoadFailed,
    LoadProgress,
    MasksFilled,
    ModelLoaded,
)
from lmtui.tui.state import Job, ModelSpec

if TYPE_CHECKING:
    from lmtui.generation import GenerateResult
    from lmtui.session import Session

Post = Callable[[Message], Any]
INTERVAL = 0.05  # seconds between two screen updates from one stream: enough for the eye, cheap to draw


def one_line(error: BaseException) -> str:
    """A user's error as the session words it; anything else with its type, still on one line."""
    text = str(error) if isinstance(error, LmtuiError) else f"{type(error).__name__}: {error}"
    return " ".join(text.split()) or type(error).__name__


def load(spec: ModelSpec, post: Post) -> None:
    last = 0.0

    def progress(done: int, total: int) -> None:
        nonlocal last
        if done == total or time.monotonic() - last >= INTERVAL:
            last = time.monotonic()
            post(LoadProgress(spec, done, total))

    try:
        from lmtui.session import Session

        session = Session(spec.model, device=spec.device, dtype=spec.dtype, progress=progress)
        info = session.info()
    except Exception as error:  # whatever broke, the app stays up to try another model
        post(LoadFailed(spec, one_line(error)))
        return
    post(ModelLoaded(spec, session, info))


def generate(session: Session, prompt: str, options: dict[str, Any], job: Job, post: Post, lane: str,
             score: bool = False) -> None:
    """Stream one run, posting its text at most every INTERVAL seconds, then its result (and, with
    `score`, the perplexity the model itself gives the output, to compare strategies on one scale)."""
    try:
        run = job.follow(session.stream(prompt, **options))
        text, last = "", 0.0
        for piece in run:
            text += piece
            if time.monotonic() - last >= INTERVAL:
                last = time.monotonic()
                step = run.steps[-1].step + 1 if run.steps else 0
                settings = run.settings
                post(GenerationProgress(job, lane, settings.strategy, text, step, settings.max_new_tokens,
                                        tuple(run.steps), settings.num_return_sequences))
        result = run.result
        assert result is not None
        perplexity = output_perplexity(session, result) if score and not job.cancelled else None
    except Exception as error:  # a bad option, or a bug: either way one line in the app
        post(GenerationFailed(job, lane, one_line(error)))
        return
    post(GenerationDone(job, lane, result, perplexity))


def output_perplexity(session: Session, result: GenerateResult) -> float | None:
    """exp(mean -log p) of the first sequence's tokens under the model's own distribution, teacher forced:
    each strategy's score is on its own scale (beam's is length-normalised, sampling's filtered), this is
    one scale for all. None when nothing was generated."""
    from lmtui.inspect.inputs import TokenInputs

    generated = len(result.sequences[0].token_ids)
    if generated == 0:
        return None
    scored = session.loss(TokenInputs.of_generation(session.kind, result)).tokens[-generated:]
    return math.exp(sum(token.nll for token in scored) / len(scored))


def fill_mask(session: Session, text: str, top_k: int, job: Job, post: Post) -> None:
    try:
        predictions = session.fill_mask(text, top_k)
    except Exception as error:
        post(GenerationFailed(job, "output", one_line(error)))
        return
    post(MasksFilled(job, predictions))
