"""The decoding form: greedy / beam / sampling and the parameters that apply to the chosen one.

Empty fields show the checkpoint's default (from generation_config.json) as a placeholder. Every
edit is checked at once by the session's own validation (`Session.settings`), so the form never
disagrees with `lmtui generate` about what is allowed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Input, Label, Select, Static

from lmtui.errors import InvalidOption
from lmtui.tui.options import EARLY_STOPPING, FIELDS, STRATEGIES, field_named_in, parse, readable, shown
from lmtui.tui.widgets.strategy import StrategySwitch

if TYPE_CHECKING:
    from lmtui.decoding.settings import GenerationSettings

Check = Callable[[dict[str, Any]], "GenerationSettings | None"]  # options -> resolved settings, or raise


class Row(Horizontal):
    """One labelled field, shown for the strategies it applies to."""

    DEFAULT_CSS = """
    Row {
        height: 1;
        & > Label { width: 19; color: $text-muted; }
        & > Input, & > Select { width: 1fr; }
        & > Input.-invalid { background: $error 30%; }
    }
    """

    def __init__(self, label: str, field: Input | Select[str], strategies: tuple[str, ...], help: str) -> None:
        super().__init__()
        self.label, self.field, self.strategies = label, field, strategies
        self.tooltip = help

    def compose(self) -> ComposeResult:
        yield Label(self.label)
        yield self.field


class DecodingPanel(VerticalScroll, can_focus=False):
    DEFAULT_CSS = """
    DecodingPanel {
        height: auto;
        max-height: 65%;
        scrollbar-size-vertical: 1;
        border: round $border-blurred;
        border-title-color: $foreground-muted;
        padding: 0 0 0 1;  /* the scrollbar, when there is one, is the right margin */
        &:focus-within { border: round $border; border-title-color: $accent; }
        & > StrategySwitch { margin-bottom: 1; }
        & > #problem { color: $text-error; height: auto; margin-top: 1; }
        & > #problem.-ok { color: $text-muted; }
        & > #run { width: 100%; }
        &.-fill-mask > StrategySwitch { display: none; }
    }
    """

    class Changed(Message):
        """A field or the strategy changed: the options need checking again."""

    def compose(self) -> ComposeResult:
        yield StrategySwitch()
        for field in FIELDS:
            yield Row(field.label, Input(id=field.name, compact=True, select_on_focus=True), field.strategies,
                      field.help)
        choices = [(name, name) for name in EARLY_STOPPING]
        yield Row("early stopping", Select(choices, id="early_stopping", compact=True, prompt=""),
                  ("beam",), "Stop when num_beams hypotheses are finished (true), by a heuristic (false), or "
                  "only when no better one is possible (never)")
        yield Row("top-k", Input("5", id="mask_top_k", compact=True, select_on_focus=True), ("fill-mask",),
                  "Candidates to show for each mask")
        yield Static(id="problem", markup=False)
        yield Button("Generate  ctrl+r", id="run", compact=True, variant="primary")

    def on_mount(self) -> None:
        self.border_title = "Decoding"
        self._show_rows()

    @property
    def mode(self) -> str:
        """The strategy, or "fill-mask" for an encoder."""
        if self.has_class("-fill-mask"):
            return "fill-mask"
        return self.query_one(StrategySwitch).strategy

    def set_kind(self, kind: str) -> None:
        self.set_class(kind == "encoder", "-fill-mask")
        self.query_one("#run", Button).label = "Fill masks  ctrl+r" if kind == "encoder" else "Generate  ctrl+r"
        self._show_rows()

    def set_strategy(self, strategy: str) -> None:
        self.query_one(StrategySwitch).strategy = strategy
        self._show_rows()
        self.post_message(self.Changed())

    def cycle_strategy(self) -> None:
        if self.mode != "fill-mask":
            self.set_strategy(STRATEGIES[(STRATEGIES.index(self.mode) + 1) % len(STRATEGIES)])

    def options(self, strategy: str | None = None) -> dict[str, Any]:
        """The typed options for a strategy (default: the chosen one); raises InvalidOption for text
        that is not a number."""
        texts = {field.name: self.query_one(f"#{field.name}", Input).value for field in FIELDS}
        early = self.query_one("#early_stopping", Select).value
        return parse(strategy or self.mode, texts, early if isinstance(early, str) else None)

    def mask_top_k(self) -> int:
        text = self.query_one("#mask_top_k", Input).value.strip() or "5"
        if not text.isdigit() or int(text) < 1:
            raise InvalidOption(f"top-k {text!r} is not a whole number of 1 or more")
        return int(text)

    def check(self, check: Check) -> dict[str, Any] | None:
        """Check the chosen strategy's options, show what is wrong (or the defaults), and return them
        when they can be used."""
        try:
            if self.mode == "fill-mask":
                return {"top_k": self.mask_top_k()}
            options = self.options()
            settings = check(options)
        except InvalidOption as error:
            self._show_problem(str(error))
            return None
        self._show_problem(None)
        if settings is not None:
            self._show_defaults(settings)
        return options

    def _show_problem(self, message: str | None) -> None:
        named = field_named_in(message) if message else None
        for field in FIELDS:
            self.query_one(f"#{field.name}", Input).set_class(named is field, "-invalid")
        self.query_one("#mask_top_k", Input).set_class(bool(message) and self.mode == "fill-mask", "-invalid")
        problem = self.query_one("#problem", Static)
        problem.set_class(message is None, "-ok")
        problem.update(readable(message) if message else "Empty fields use the model's defaults.")

    def _show_defaults(self, settings: GenerationSettings) -> None:
        for field in FIELDS:
            self.query_one(f"#{field.name}", Input).placeholder = shown(settings, field.name)
        self.query_one("#early_stopping", Select).prompt = shown(settings, "early_stopping")

    def _show_rows(self) -> None:
        for row in self.query(Row):
            row.display = self.mode in row.strategies

    def on_strategy_switch_changed(self, event: StrategySwitch.Changed) -> None:
        event.stop()
        self._show_rows()
        self.post_message(self.Changed())

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.Changed())

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.post_message(self.Changed())
