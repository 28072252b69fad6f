"""The Compare view: greedy search, beam search and sampling on the same prompt, side by side
(stacked when the view is narrow), each with its settings, why it ended, and the model's perplexity on
its output: each strategy's own score has its own scale, so that is what the three are compared by."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import events
from textual.app import ComposeResult
from textual.containers import Container, VerticalScroll
from textual.content import Content
from textual.widgets import Static

from lmtui.tui.options import STRATEGIES
from lmtui.tui.state import AppState

if TYPE_CHECKING:
    from lmtui.generation import GenerateResult

NARROW = 90  # below this many cells the three panes stack


class Pane(VerticalScroll):
    DEFAULT_CSS = """
    Pane {
        border: round $border-blurred;
        padding: 0 1;
        & > #text { width: 1fr; }
        &.-error > #text { color: $text-error; }
    }
    """

    def __init__(self, strategy: str) -> None:
        super().__init__(id=f"pane-{strategy}")
        self.border_title = strategy

    def compose(self) -> ComposeResult:
        yield Static("", id="text", markup=False)

    def show(self, text: Content | str, subtitle: str, error: bool = False) -> None:
        self.set_class(error, "-error")
        self.query_one("#text", Static).update(text)
        self.border_subtitle = Content(subtitle)


class CompareView(Container):
    DEFAULT_CSS = """
    CompareView {
        layout: horizontal;
        & > Pane { width: 1fr; height: 1fr; }
        &.-narrow { layout: vertical; }
        &.-narrow > Pane { width: 100%; }
    }
    """

    def __init__(self, state: AppState) -> None:
        super().__init__()
        self.state = state
        self._pending: set[str] = set()  # strategies of the compare in progress that have not ended
        self._prompt = ""  # shown dimmed before a decoder's continuation

    def compose(self) -> ComposeResult:
        for strategy in STRATEGIES:
            yield Pane(strategy)

    def on_mount(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Nothing compared yet (or a new model: what the last one wrote is gone)."""
        for pane in self.query(Pane):
            pane.show("Press ctrl+t to run greedy, beam and sampling on the prompt.", "")

    def on_resize(self, event: events.Resize) -> None:
        self.set_class(event.size.width < NARROW, "-narrow")

    def started(self, prompt: str) -> None:
        """A compare begins; `prompt` is what the continuations follow ("" for an encoder-decoder)."""
        self._pending, self._prompt = set(STRATEGIES), prompt
        for pane in self.query(Pane):
            pane.show("waiting …", "")

    def stopped(self) -> None:
        """The job is over: a strategy it never reached was cancelled before it began."""
        for strategy in self._pending:
            self._pane(strategy).show("not run: the compare was cancelled", "")
        self._pending = set()

    def progress(self, strategy: str, text: str, step: int, max_steps: int) -> None:
        shown = self._continuation(text) if text else "searching …" if strategy == "beam" else ""
        self._pane(strategy).show(shown, f"step {step} of {max_steps}")

    def done(self, strategy: str, result: GenerateResult, perplexity: float | None) -> None:
        """The output, and under it: why it ended, its length and the model's perplexity on it (one
        scale for all three: lower is text the model finds more likely)."""
        sequence = result.sequences[0]
        seed = f" · seed {result.settings.seed}" if strategy == "sample" else ""
        beams = f" · {result.settings.num_beams} beams" if strategy == "beam" else ""
        ppl = f" · perplexity {perplexity:.2f}" if perplexity is not None else ""
        subtitle = f"{sequence.finish_reason} · {len(sequence.token_ids)} tokens{ppl}{beams}{seed}"
        self._pane(strategy).show(self._continuation(sequence.text), subtitle)
        self._pending.discard(strategy)

    def failed(self, strategy: str, reason: str) -> None:
        self._pane(strategy).show(reason, "failed", error=True)
        self._pending.discard(strategy)

    def _continuation(self, text: str) -> Content:
        return Content.assemble((self._prompt, "$foreground-muted"), (text, "bold"))

    def _pane(self, strategy: str) -> Pane:
        return self.query_one(f"#pane-{strategy}", Pane)
