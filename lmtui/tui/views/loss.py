"""The Loss view: the teacher-forced loss of each token as a colour strip over the text, with an ε
(label smoothing) field, the mean loss and perplexity; the selected token's loss taken apart, the
model's top choices there and the smoothed target next to the model's distribution.

What is scored follows `Session.loss`: a decoder's tokens after the first, an encoder-decoder's target
given its source, an encoder's pseudo-log-likelihood (each token masked in turn: slower, so it runs in
a worker like the rest).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.widgets import Input, Label, Static

from lmtui.tui.jobs import one_line
from lmtui.tui.state import AppState
from lmtui.tui.text import piece_label
from lmtui.tui.views.inspecting import Follow, Source, read_source, source_key_offered
from lmtui.tui.views.loss_detail import token_detail
from lmtui.tui.widgets.heatmap import Palette
from lmtui.tui.widgets.token_strip import Chip, TokenStrip

if TYPE_CHECKING:
    from lmtui.loss import LossResult
    from lmtui.session import Session

HEAT = Palette((0.0, "#1a9850"), (0.35, "#a6d96a"), (0.6, "#fee08b"), (0.8, "#fc8d59"), (1.0, "#d73027"))
STEP = 0.05  # + and - move ε by this much
NOT_SCORED = {
    "decoder": "Not scored: the first token has no prefix to be predicted from.",
    "encoder": "Not scored: special tokens frame the text rather than belong to it.",
    "encoder-decoder": "Not scored.",
}


@dataclass
class Scored(Message, bubble=False):
    serial: int
    result: LossResult
    labels: list[str]  # every token of the scored text (a decoder's first one too), as it reads


@dataclass
class Failed(Message, bubble=False):
    serial: int
    reason: str


class LossView(Vertical, can_focus=True):
    DEFAULT_CSS = """
    LossView {
        padding: 0 1;
        & > #controls { height: 1; }
        & > #controls > Label { width: auto; color: $text-muted; }
        & > #controls > Input { width: 8; margin: 0 1; }
        & > #controls > Input.-invalid { background: $error 30%; }
        & > #controls > #range { width: 1fr; color: $text-muted; text-wrap: nowrap; text-overflow: ellipsis; }
        & > #status { height: auto; max-height: 3; }
        & > #legend { height: 1; text-wrap: nowrap; text-overflow: ellipsis; }
        & > #status.-error { color: $text-error; }
        & > TokenStrip { margin-top: 1; }
        & > #legend { color: $text-muted; margin-bottom: 1; }
        & > #detail { height: 1fr; }
    }
    """
    BINDINGS = [
        Binding("left", "step(-1)", "Token", key_display="←→"),
        Binding("right", "step(1)", show=False),
        Binding("up", "line(-1)", show=False),
        Binding("down", "line(1)", show=False),
        Binding("home", "step(-1000000)", show=False),
        Binding("end", "step(1000000)", show=False),
        Binding("e", "edit_epsilon", "Edit ε"),
        Binding("plus,equals_sign", "epsilon(1)", "Step ε", key_display="+ -"),
        Binding("minus", "epsilon(-1)", show=False),
        Binding("g", "source", "Prompt/output"),
    ]

    def __init__(self, state: AppState) -> None:
        super().__init__()
        self.state = state
        self.follow = Follow(self, self.update)
        self.from_generation = False
        self._serial = 0
        self._source: Source | None = None
        self._result: LossResult | None = None
        self._labels: list[str] = []
        self._scored: dict[int, int] = {}  # position in the text -> index into result.tokens
        self._request: tuple[object, ...] | None = None  # (session, source, ε) of the last scoring

    def compose(self) -> ComposeResult:
        with Horizontal(id="controls"):
            yield Label("label smoothing ε", markup=False)
            yield Input("0", id="epsilon", compact=True, select_on_focus=True,
                        tooltip="Label smoothing: 0 ≤ ε < 1. The target keeps 1 − ε on the true token and "
                                "spreads ε over the whole vocabulary.")
            yield Static("0 ≤ ε < 1 · e edits · + − step", id="range", markup=False)
        yield Static(id="status", markup=False)
        yield TokenStrip()
        yield Static(id="legend", markup=False)
        with VerticalScroll(id="detail", can_focus=False):
            yield Static(id="text", markup=False)

    def on_mount(self) -> None:
        self.follow.start()

    def on_show(self) -> None:
        self.follow.on_show()

    def on_hide(self) -> None:
        self.follow.on_hide()

    # -- scoring

    def update(self) -> None:
        session = self.state.session
        source = None if session is None else self._read(session)
        epsilon = self._epsilon()
        request = (session, source, epsilon)
        if request == self._request:
            return  # the same text and ε as last time (a generation ended, the view was shown again)
        self._request = request
        self._serial += 1
        if session is None:
            self._message(self.state.error or "The loss appears once the model has loaded.", self.state.error)
            return
        if isinstance(source, str):
            self._message(source)
            return
        if isinstance(epsilon, str):
            self._message(epsilon, epsilon)
            return
        assert source is not None
        self._source = source
        self._status(Content.styled(f"scoring {source.label} …", "$text-muted"))
        self.loss_worker(self._serial, session, source, epsilon)

    def _read(self, session: Session) -> Source | str:
        source = read_source(session.kind, self.app.prompt, self.app.target,  # type: ignore[attr-defined]
                             self.app.result, self.from_generation)  # type: ignore[attr-defined]
        if session.kind == "encoder-decoder" and isinstance(source, Source) and source.args == (source.text, None):
            return ("No target yet: type one under the source (an encoder-decoder's loss scores the target, token "
                    "by token, given the source), or press g for the last generation.")
        return source

    @work(thread=True, exclusive=True, group="loss")
    def loss_worker(self, serial: int, session: Session, source: Source, epsilon: float) -> None:
        try:
            result = session.loss(*source.args, label_smoothing=epsilon)
            labels = scored_labels(session, source)
        except Exception as error:  # too short, too long, ε out of range: one line in the view
            self.post_message(Failed(serial, one_line(error)))
            return
        self.post_message(Scored(serial, result, labels))

    def on_scored(self, message: Scored) -> None:
        if message.serial != self._serial:
            return
        self._result, self._labels = message.result, message.labels
        self._scored = {token.position: n for n, token in enumerate(message.result.tokens)}
        strip = self.query_one(TokenStrip)
        selected = strip.selected if strip.selected is not None else min(self._scored, default=0)
        strip.show([(None, self._chips())], selected)
        self._summary()
        self._show_selected()

    def on_failed(self, message: Failed) -> None:
        if message.serial == self._serial:
            self._message(message.reason, message.reason)

    def _chips(self) -> list[Chip]:
        assert self._result is not None
        tokens = self._result.tokens
        most = scale_top(self._result)
        session = self.state.session
        wordpiece = session is not None and session.tokenizer.kind == "WordPiece"  # words lose their spaces
        chips = []
        for position, label in enumerate(self._labels):
            n = self._scored.get(position)
            background = HEAT.style(tokens[n].loss / most) if n is not None else None
            lead = " " if wordpiece and position and not label.startswith("##") else ""
            chips.append(Chip(label, "muted", background, newline=label.endswith("↵"), lead=lead))
        return chips

    def _summary(self) -> None:
        result, source = self._result, self._source
        assert result is not None and source is not None
        what = "pseudo-log-likelihood, " if result.kind == "encoder" else ""
        nll = [("  mean nll ", "$text-muted"), f"{result.mean_nll:.4f}"] if result.label_smoothing else []
        self._status(Content.assemble(("mean loss ", "$text-muted"), (f"{result.mean_loss:.4f}", "bold $accent"),
                                      *nll, ("  perplexity ", "$text-muted"), f"{result.perplexity:.2f}",
                                      (f"  · {what}{len(result.tokens)} tokens · {source.label}", "$text-muted")))
        self.query_one("#legend", Static).update(Content.assemble(
            "loss 0 ", HEAT.swatch(10), f" {scale_top(result):.2f}", ("   grey: not scored", "$text-muted")))

    # -- the selected token

    def on_token_strip_selected(self, message: TokenStrip.Selected) -> None:
        message.stop()
        self._show_selected()

    def _show_selected(self) -> None:
        position = self.query_one(TokenStrip).selected
        if self._result is None or position is None:
            return
        text = self.query_one("#text", Static)
        n = self._scored.get(position)
        if n is None:
            text.update(Content.assemble((self._labels[position], "bold"), "  ",
                                         (NOT_SCORED[self._result.kind], "$text-muted")))
            return
        session = self.state.session
        kind = session.tokenizer.kind if session is not None else ""
        width = self.query_one("#detail").size.width
        text.update(token_detail(self._result, n, self._labels[position],
                                 lambda piece: piece_label(kind, piece), width))

    def action_step(self, step: int) -> None:
        strip = self.query_one(TokenStrip)
        strip.select((strip.selected or 0) + step)

    def action_line(self, step: int) -> None:
        self.query_one(TokenStrip).select_line(step)

    # -- ε and the text

    def _epsilon(self) -> float | str:
        """ε as typed, or why it is not a number (the session checks its range)."""
        field = self.query_one("#epsilon", Input)
        typed = field.value.strip() or "0"
        try:
            value = float(typed)
        except ValueError:
            field.add_class("-invalid")
            return f"label smoothing ε must be a number from 0 to 1 (less than 1), not {typed!r}"
        field.set_class(not 0 <= value < 1, "-invalid")
        return value

    @on(Input.Changed, "#epsilon")
    def _epsilon_changed(self) -> None:
        self.follow.changed()

    @on(Input.Submitted, "#epsilon")
    def _epsilon_submitted(self) -> None:
        self.focus()
        self.follow.now()

    def action_edit_epsilon(self) -> None:
        self.query_one("#epsilon", Input).focus()

    def action_epsilon(self, steps: int) -> None:
        value = self._epsilon()
        value = value if isinstance(value, float) else 0.0
        value = max(0.0, min(1 - STEP, round(value + steps * STEP, 4)))
        self.query_one("#epsilon", Input).value = f"{value:g}"

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "source":
            return source_key_offered(self.state.kind, self.from_generation)
        return True

    def action_source(self) -> None:
        self.from_generation = not self.from_generation
        self.refresh_bindings()
        self.follow.now()

    def _message(self, text: str, error: str | None = None) -> None:
        self._result, self._labels, self._scored = None, [], {}
        self.query_one(TokenStrip).show([])
        self.query_one("#legend", Static).update("")
        self.query_one("#text", Static).update("")
        self._status(Content(text), error is not None)

    def _status(self, content: Content, error: bool = False) -> None:
        status = self.query_one("#status", Static)
        status.set_class(error, "-error")
        status.update(content)


def scored_labels(session: Session, source: Source) -> list[str]:
    """Every token of the text the loss scores (an encoder-decoder's target), readable, in order."""
    text, target = source.args
    inputs = source.generated or session.inputs(text if isinstance(text, str) else "", target)
    ids = inputs.target_ids if session.kind == "encoder-decoder" else inputs.ids
    tokenizer = session.tokenizer
    return [piece_label(tokenizer.kind, tokenizer.id_to_piece(i) or f"#{i}") for i in ids or ()]


def scale_top(result: LossResult) -> float:
    """The loss that gets the hottest colour: the text's highest, but at least 1 nat (p ≈ 0.37), so a text
    the model predicts well stays cool instead of having its small differences blown up."""
    return max(1.0, *(token.loss for token in result.tokens))
