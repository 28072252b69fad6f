"""greedy / beam / sample on one line. Its value changes the moment it is set, so several presses
of ctrl+s in a row each move on, whatever messages are still on their way."""

from __future__ import annotations

from textual import events
from textual.binding import Binding
from textual.content import Content
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

from lmtui.tui.options import STRATEGIES

GAP = 2  # cells between two choices


class StrategySwitch(Widget, can_focus=True):
    DEFAULT_CSS = """
    StrategySwitch { height: 1; width: 100%; }
    StrategySwitch:focus { background: $boost; }
    """
    BINDINGS = [Binding("left", "move(-1)", "Previous", show=False), Binding("right", "move(1)", "Next", show=False)]

    strategy = reactive("greedy")

    class Changed(Message):
        """The user chose another strategy (by click or key; not when code sets `strategy`)."""

    def render(self) -> Content:
        parts: list[str | tuple[str, str]] = []
        for name in STRATEGIES:
            chosen = name == self.strategy
            parts += [("● " if chosen else "○ ", "$accent" if chosen else "$foreground-muted"),
                      (name, "bold" if chosen else "$foreground-muted"), " " * GAP]
        return Content.assemble(*parts)

    def action_move(self, step: int) -> None:
        self._choose(STRATEGIES[(STRATEGIES.index(self.strategy) + step) % len(STRATEGIES)])

    def on_click(self, event: events.Click) -> None:
        start = 0
        for name in STRATEGIES:
            end = start + 2 + len(name)
            if start <= event.x < end:
                self._choose(name)
            start = end + GAP

    def _choose(self, name: str) -> None:
        if name != self.strategy:
            self.strategy = name
            self.post_message(self.Changed())
