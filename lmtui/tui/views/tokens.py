"""The Tokens view: how the prompt (and an encoder-decoder's target) splits into tokens, in alternating
colours with whitespace made visible, ids on demand; the selected token's id, bytes, offsets and the
steps that built it (BPE merges, WordPiece matches, Unigram segmentations)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.widgets import Static

from lmtui.tui.jobs import one_line
from lmtui.tui.state import AppState
from lmtui.tui.views.inspecting import Follow
from lmtui.tui.views.traces import PENDING, token_detail
from lmtui.tui.widgets.token_strip import Chip, TokenStrip

if TYPE_CHECKING:
    from lmtui.inspect.tokens import SplitToken, TokenSplit, Trace
    from lmtui.tokenizer import Tokenizer

SUBSCRIPT = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
HINT = "Type a prompt on the left to see how the tokenizer splits it."


class TokensView(Vertical, can_focus=True):
    DEFAULT_CSS = """
    TokensView {
        padding: 0 1;
        & > #status { height: auto; max-height: 3; color: $text-muted; }
        & > #status.-error { color: $text-error; }
        & > TokenStrip { margin: 1 0; }
        & > #detail { height: 1fr; }
    }
    """
    BINDINGS = [
        Binding("left", "step(-1)", "Token", key_display="←→"),
        Binding("right", "step(1)", "Next token", show=False),
        Binding("up", "line(-1)", show=False),
        Binding("down", "line(1)", show=False),
        Binding("home", "step(-1000000)", show=False),
        Binding("end", "step(1000000)", show=False),
        Binding("i", "toggle_ids", "Ids"),
    ]

    class Split(Message, bubble=False):
        """The worker's splits of the texts (or why it could not split them)."""

        def __init__(self, serial: int, splits: list[tuple[str, TokenSplit]], error: str | None) -> None:
            super().__init__()
            self.serial, self.splits, self.error = serial, splits, error

    class Traced(Message, bubble=False):
        def __init__(self, tokenizer: Tokenizer, key: tuple[bool, str], trace: Trace | None) -> None:
            super().__init__()
            self.tokenizer, self.key, self.trace = tokenizer, key, trace

    def __init__(self, state: AppState) -> None:
        super().__init__()
        self.state = state
        self.follow = Follow(self, self.update)
        self.ids = False
        self._serial = 0
        self._splits: list[tuple[str, TokenSplit]] = []  # (where: "" or " in the source"/" in the target", split)
        self._tokenizer: Tokenizer | None = None
        self._traces: dict[tuple[bool, str], Trace | None] = {}  # by (target side, word), for the tokenizer above
        self._request: tuple[object, ...] | None = None  # (session, prompt, target) last split

    def compose(self) -> ComposeResult:
        yield Static(HINT, id="status", markup=False)
        yield TokenStrip()
        with VerticalScroll(id="detail", can_focus=False):
            yield Static(id="text", markup=False)

    def on_mount(self) -> None:
        self.follow.start()

    def on_show(self) -> None:
        self.follow.on_show()

    def on_hide(self) -> None:
        self.follow.on_hide()

    # -- reading the texts

    def update(self) -> None:
        session = self.state.session
        prompt, target = self.app.prompt, self.app.target  # type: ignore[attr-defined]
        request = (session, prompt, target)
        if request == self._request:
            return  # nothing the split depends on changed (a generation ended, the view was shown again)
        self._request = request
        self._serial += 1
        if session is None:
            self._clear(self.state.error or "The tokens appear once the model has loaded.", self.state.error)
            return
        if not prompt:
            self._clear(HINT)
            return
        if session.tokenizer is not self._tokenizer:
            self._tokenizer, self._traces = session.tokenizer, {}
        texts = [("source", prompt), ("target", target)] if session.kind == "encoder-decoder" and target else [
            ("", prompt)]
        self.split_worker(self._serial, session.tokenizer, texts)

    @work(thread=True, exclusive=True, group="tokens")
    def split_worker(self, serial: int, tokenizer: Tokenizer, texts: list[tuple[str, str]]) -> None:
        from lmtui.inspect.tokens import split_text  # loads `tokenizers`: not before the first frame

        try:
            splits = [(where, split_text(tokenizer, text, target=where == "target")) for where, text in texts]
        except Exception as error:  # a tokenizer that cannot take the text: one line, the app stays up
            self.post_message(self.Split(serial, [], one_line(error)))
            return
        self.post_message(self.Split(serial, splits, None))

    def on_tokens_view_split(self, message: Split) -> None:
        if message.serial != self._serial:
            return  # the text changed since
        if message.error is not None:
            self._clear(message.error, message.error)
            return
        self._splits = message.splits
        strip = self.query_one(TokenStrip)
        strip.show(self._sections(), strip.selected if strip.selected is not None else 0)
        self._status(self._summary())
        self._show_selected()

    def _sections(self) -> list[tuple[str | None, list[Chip]]]:
        return [(where or None, self._chips(split)) for where, split in self._splits]

    def _chips(self, split: TokenSplit) -> list[Chip]:
        """One chip per token; text the model never sees (WordPiece drops spaces) is left between them."""
        chips, end = [], 0
        for token in split.tokens:
            text = token.display or "∅"
            if self.ids:
                text += str(token.id).translate(SUBSCRIPT)
            tone = "special" if token.special else "unknown" if token.unknown else ("even", "odd")[token.index % 2]
            gap = split.text[end:token.start] if token.end > token.start else ""
            if "\n" in gap and chips:
                chips[-1] = replace(chips[-1], newline=True)
            lead = " " if gap.strip("\n") and chips and not chips[-1].newline else ""
            chips.append(Chip(text, tone, newline=token.bytes[-1:] == (10,) and not token.special, lead=lead))
            end = max(end, token.end)
        return chips

    def _summary(self) -> str:
        (_, first), *rest = self._splits
        counts = " · ".join(f"{where} {len(split.tokens)} tokens" for where, split in self._splits) if rest else (
            f"{len(first.tokens)} tokens, {len(first.words)} words")
        return f"{counts} · {first.kind}"

    # -- the selected token

    def action_step(self, step: int) -> None:
        strip = self.query_one(TokenStrip)
        strip.select((strip.selected or 0) + step)

    def action_line(self, step: int) -> None:
        self.query_one(TokenStrip).select_line(step)

    def action_toggle_ids(self) -> None:
        self.ids = not self.ids
        if self._splits:
            strip = self.query_one(TokenStrip)
            strip.show(self._sections(), strip.selected)

    def on_token_strip_selected(self, message: TokenStrip.Selected) -> None:
        message.stop()
        self._show_selected()

    def _selected(self) -> tuple[str, TokenSplit, SplitToken] | None:
        index = self.query_one(TokenStrip).selected
        for where, split in self._splits:
            if index is not None and index < len(split.tokens):
                return where, split, split.tokens[index]
            index = None if index is None else index - len(split.tokens)
        return None

    def _show_selected(self) -> None:
        selected = self._selected()
        if selected is None:
            return
        where, split, token = selected
        trace: Trace | None | object = None
        if token.word is not None:
            key = (where == "target", split.words[token.word].text)
            trace = self._traces.get(key, PENDING)
            if trace is PENDING and self._tokenizer is not None:
                self.trace_worker(self._tokenizer, key)
        width = self.query_one("#detail").size.width
        self.query_one("#text", Static).update(token_detail(split, token, f" in the {where}" if where else "", trace,
                                                            width))

    def on_resize(self) -> None:
        self._show_selected()

    @work(thread=True, exclusive=True, group="tokens-trace")
    def trace_worker(self, tokenizer: Tokenizer, key: tuple[bool, str]) -> None:
        from lmtui.inspect.tokens import trace_word

        target, word = key
        try:
            trace = trace_word(tokenizer, word, target)
        except Exception:  # a replay that fails still leaves the token's own facts on screen
            trace = None
        self.post_message(self.Traced(tokenizer, key, trace))

    def on_tokens_view_traced(self, message: Traced) -> None:
        if message.tokenizer is self._tokenizer:
            self._traces[message.key] = message.trace
            self._show_selected()

    def _clear(self, status: str, error: str | None = None) -> None:
        self._splits = []
        self.query_one(TokenStrip).show([])
        self.query_one("#text", Static).update("")
        self._status(status, error is not None)

    def _status(self, text: str, error: bool = False) -> None:
        status = self.query_one("#status", Static)
        status.set_class(error, "-error")
        status.update(Content(text))
