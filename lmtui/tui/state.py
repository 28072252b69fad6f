"""What the app's widgets share: which model is asked for, the loaded session, the job in progress.

A plain object (no Textual, no torch): workers fill it in from their threads, widgets read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from lmtui.checkpoint import DEFAULT_MODEL
from lmtui.tui.text import visible

if TYPE_CHECKING:
    from lmtui.generation import GenerationRun
    from lmtui.session import Session


@dataclass(frozen=True)
class ModelSpec:
    """A model as the user named it: a folder, a .safetensors file, a cached Hub id, or None (the default)."""

    model: str | None = None
    device: str = "auto"
    dtype: str = "auto"

    @property
    def label(self) -> str:
        return self.model if self.model is not None else f"{DEFAULT_MODEL.name} (bundled)"


class Job:
    """Background work the user can cancel: one generation, or the three runs of a compare.

    `cancel` is called from the app's thread; the worker registers each run it starts with `follow`,
    so a cancel that lands before a run exists still stops it.
    """

    def __init__(self) -> None:
        self.cancelled = False
        self._runs: list[GenerationRun] = []

    def follow(self, run: GenerationRun) -> GenerationRun:
        self._runs.append(run)
        if self.cancelled:
            run.cancel()
        return run

    def cancel(self) -> None:
        self.cancelled = True
        for run in self._runs:
            run.cancel()


class AppState:
    """The loaded session (None while loading or after a failed load) and the job in progress."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.session: Session | None = None
        self.error: str | None = None  # why the last load failed
        self.job: Job | None = None

    @property
    def busy(self) -> bool:
        return self.job is not None

    @property
    def kind(self) -> str:
        """What the loaded model does: decoder, encoder or encoder-decoder (decoder until one loads)."""
        return self.session.kind if self.session is not None else "decoder"

    def token_text(self, token_id: int) -> str:
        """A token as it reads in text, whitespace made visible; its vocabulary entry when it decodes to
        nothing readable on its own (a special token, part of a multi-byte character)."""
        if self.session is None:
            return f"#{token_id}"
        tokenizer = self.session.tokenizer
        text = tokenizer.decode([token_id])
        if not text or "\ufffd" in text:
            text = tokenizer.id_to_piece(token_id) or f"#{token_id}"
        return visible(text)
