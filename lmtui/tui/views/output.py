"""The Output view: the text as it streams in, then every returned sequence with its score and why it
ended; for an encoder, each mask's candidates."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Static

from lmtui.tui.state import AppState
from lmtui.tui.text import bar, percent, visible

if TYPE_CHECKING:
    from lmtui.generation import GeneratedText, GenerateResult
    from lmtui.masked import MaskPrediction

HINTS = {  # what to do first, for each kind of model
    "decoder": "Type a prompt on the left and press ctrl+r to generate; ctrl+t compares greedy, beam search "
               "and sampling. F1 to F6 switch views; ctrl+p lists every command.",
    "encoder-decoder": "Type a source text on the left and press ctrl+r to generate from it; ctrl+t compares "
                       "greedy, beam search and sampling. Type a target too, and Attention (F3) shows the decoder "
                       "and cross attention, Loss (F4) how well the model predicts it. ctrl+p lists every command.",
    "encoder": "Type a text with {mask} on the left and press ctrl+r: the model fills each mask with its top "
               "candidates. Tokens (F2), Attention (F3) and Loss (F4) read any text; ctrl+p lists every command.",
}


class OutputView(VerticalScroll):
    DEFAULT_CSS = """
    OutputView {
        padding: 0 1;
        & > #status { color: $text-muted; margin-bottom: 1; }
        & > #status.-error { color: $text-error; }
    }
    """

    def __init__(self, state: AppState) -> None:
        super().__init__()
        self.state = state
        self._prompt = ""
        self._hint = HINTS["decoder"]  # what to do first with the model loaded

    def compose(self) -> ComposeResult:
        yield Static(self._hint, id="status", markup=False)
        yield Static(id="text", markup=False)

    def on_mount(self) -> None:
        self.watch(self.app, "result", self.show_result, init=False)

    def welcome(self, kind: str, mask_token: str | None) -> None:
        """A model has loaded: say what to do with this kind of model."""
        self._hint = HINTS[kind].format(mask=mask_token or "a mask token")
        self.show_result(None)

    def started(self, strategy: str, prompt: str) -> None:
        """A run begins; `prompt` is shown dimmed before a decoder's output ("" for other kinds)."""
        self._prompt = prompt
        self._status(f"{strategy}: starting …")
        self._text(self._continuation(prompt, ""))

    def progress(self, strategy: str, text: str, step: int, max_steps: int) -> None:
        waiting = " (the beams are shown when the search ends)" if strategy == "beam" else ""
        self._status(f"{strategy}: step {step} of {max_steps}{waiting}  ·  esc cancels")
        self._text(self._continuation(self._prompt, text))
        self.scroll_end(animate=False)

    def failed(self, reason: str) -> None:
        self._status(reason, error=True)

    def show_result(self, result: GenerateResult | None) -> None:
        if result is None:
            self._status(self._hint)
            self._text(Content(""))
            return
        sequences = result.sequences
        seed = f"  ·  seed {result.settings.seed}" if result.strategy == "sample" else ""
        self._status(f"{result.strategy}: {len(result.steps)} steps{seed}")
        if len(sequences) == 1:
            sequence = sequences[0]
            summary = Content.styled(f"\n\n{describe(sequence)}", "$foreground-muted")
            self._text(self._continuation(result.prompt, sequence.text) + summary)
            return
        parts = []
        for number, sequence in enumerate(sequences, start=1):
            parts += [Content.styled(f"#{number}  {describe(sequence)}\n", "bold"),
                      self._continuation(result.prompt, sequence.text), Content("\n\n")]
        self._text(Content.assemble(*parts))

    def show_masks(self, predictions: list[MaskPrediction]) -> None:
        count = len(predictions)
        self._status(f"fill-mask: {count} mask{'s' if count != 1 else ''}, each with the encoder's top candidates")
        parts = []
        for prediction in predictions:
            parts.append(Content.styled(f"mask at token {prediction.position}\n", "bold"))
            for candidate in prediction.candidates:
                parts += [Content(f"  {visible(candidate.text)[:16]:<16} "),
                          Content.styled(f"{bar(candidate.prob, 20):<20}", "$accent"),
                          Content(f" {percent(candidate.prob)}\n")]
            parts.append(Content("\n"))
        self._text(Content.assemble(*parts))

    def _continuation(self, prompt: str, text: str) -> Content:
        """A decoder's output after its prompt (dimmed); an encoder-decoder's output on its own."""
        if self.state.kind == "decoder":
            return Content.assemble((prompt, "$foreground-muted"), (text, "bold"))
        return Content.styled(text, "bold")

    def _status(self, message: str, error: bool = False) -> None:
        status = self.query_one("#status", Static)
        status.set_class(error, "-error")
        status.update(message)

    def _text(self, content: Content) -> None:
        self.query_one("#text", Static).update(content)


def describe(sequence: GeneratedText) -> str:
    tokens = len(sequence.token_ids)
    return f"score {sequence.score:.4f}  ·  ended: {sequence.finish_reason}  ·  {tokens} tokens"
