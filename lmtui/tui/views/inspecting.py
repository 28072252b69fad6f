"""What the inspection views (Tokens, Attention, Loss) share: which text they read, and when to read it
again.

Each inspection runs the model (or the tokenizer) in a thread worker. Typing would start one per key,
so a change waits for a pause in the typing, and a view that is not shown only notes that it is out
of date and catches up when it is shown: a hidden Loss view does not score every keystroke.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.timer import Timer
from textual.widget import Widget

from lmtui.inspect.inputs import TokenInputs

if TYPE_CHECKING:
    from lmtui.generation import GenerateResult

DELAY = 0.3  # seconds without a keystroke before the text is read again
WATCHED = ("info", "prompt", "target", "result")  # the app's reactives (lmtui/tui/views/__init__.py)


@dataclass(frozen=True)
class Source:
    """The text an inspection reads: the typed prompt (and target), or the last generation's ids exactly
    as they were produced (decoding and encoding again does not always give the same tokens)."""

    text: str
    target: str | None
    generated: TokenInputs | None = None

    @property
    def args(self) -> tuple[str | TokenInputs, str | None]:
        """The (text, target) arguments of `Session.attention` and `Session.loss`."""
        return (self.generated, None) if self.generated is not None else (self.text, self.target)

    @property
    def label(self) -> str:
        return "the last generation" if self.generated is not None else "the typed text"


def read_source(kind: str, prompt: str, target: str, result: GenerateResult | None,
                from_generation: bool) -> Source | str:
    """What to inspect, or (a str) why there is nothing to inspect yet."""
    if not from_generation:
        if not prompt.strip():
            return "Type a prompt on the left to inspect it here."
        return Source(prompt, target if kind == "encoder-decoder" and target else None)
    if kind == "encoder":
        return "An encoder fills masks and does not generate text: press g to go back to the prompt."
    if result is None:
        return "Nothing generated yet: press ctrl+r to generate (or g to go back to the prompt)."
    return Source(result.prompt, None, TokenInputs.of_generation(kind, result))


def source_key_offered(kind: str, from_generation: bool) -> bool:
    """Whether g (prompt / last generation) means anything: not for an encoder, which generates nothing,
    unless the view is still on a generation from the model before (g is then the way back)."""
    return kind != "encoder" or from_generation


class Follow:
    """Calls `update` when the app's model or text changes: after a pause in the typing while the view
    is shown, at once when it is shown again after a change."""

    def __init__(self, view: Widget, update: Callable[[], None]) -> None:
        self.view = view
        self.update = update
        self.stale = True
        self.shown = False
        self._timer: Timer | None = None

    def start(self) -> None:
        """Watch the app's reactives (call from the view's on_mount)."""
        for name in WATCHED:
            self.view.watch(self.view.app, name, self.changed, init=False)

    def changed(self, *_: object) -> None:
        self.stale = True
        if self.shown:
            self._wait()

    def now(self) -> None:
        """Read again at once: a key the user pressed in the view itself, not typing elsewhere."""
        self._stop()
        self.stale = False
        self.update()

    def on_show(self) -> None:
        self.shown = True
        if self.stale:
            self.now()

    def on_hide(self) -> None:
        self.shown = False
        self._stop()

    @property
    def waiting(self) -> bool:
        """A change is noted but not yet read (the view's tests wait on this and on its workers)."""
        return self._timer is not None

    def _wait(self) -> None:
        self._stop()
        self._timer = self.view.set_timer(DELAY, self._fire)

    def _fire(self) -> None:
        self._timer = None
        if self.shown and self.stale:
            self.now()

    def _stop(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
