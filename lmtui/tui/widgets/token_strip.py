"""Tokens laid out as running text, one coloured chip each, wrapped to the width; one can be selected
with the keys or the mouse. The Tokens view colours chips alternately, the Loss view by each token's loss.

A Line API widget: it lays the chips out itself, so it knows which token is under a click and which
token is above or below another for the up and down keys.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip


@dataclass(frozen=True)
class Chip:
    """One token as drawn. `tone` picks a component style (even, odd, special, muted); `background`,
    when given, colours the chip instead (the Loss view's heat)."""

    text: str
    tone: str = "even"
    background: Style | None = None
    newline: bool = False  # the token ends a line of the text: the next chip starts a new line
    lead: str = ""  # uncoloured text before the chip: the space between words a WordPiece model never sees


@dataclass(frozen=True)
class Placed:
    """Part of a chip on one line (a chip wider than the strip is cut over several)."""

    x: int
    text: str
    chip: int  # index into the chips; -1 for a heading, -2 for the space between two chips


Line = list[Placed]


class TokenStrip(ScrollView, can_focus=False):
    """Chips in sections (e.g. source and target), each under its heading; one selection across them."""

    COMPONENT_CLASSES = {"token-strip--even", "token-strip--odd", "token-strip--special", "token-strip--unknown",
                         "token-strip--muted", "token-strip--heading", "token-strip--selected"}
    DEFAULT_CSS = """
    TokenStrip {
        height: auto;
        max-height: 45%;
        scrollbar-size: 0 1;  /* no horizontal bar: chips wrap; a stable gutter keeps the width steady */
        scrollbar-gutter: stable;
        overflow-x: hidden;
        & > .token-strip--even { background: $primary 45%; }
        & > .token-strip--odd { background: $success 35%; }
        & > .token-strip--special { background: $warning 35%; text-style: italic; }
        & > .token-strip--unknown { background: $error 40%; }
        & > .token-strip--muted { color: $text-muted; background: $panel; }
        & > .token-strip--heading { color: $text-muted; text-style: bold; }
        & > .token-strip--selected { text-style: bold reverse; }
    }
    """
    class Selected(Message):
        def __init__(self, strip: TokenStrip, index: int) -> None:
            super().__init__()
            self.strip = strip
            self.index = index

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self._sections: list[tuple[str | None, list[Chip]]] = []
        self._chips: list[Chip] = []
        self._lines: list[Line] = []
        self.selected: int | None = None

    def show(self, sections: list[tuple[str | None, list[Chip]]], selected: int | None = None) -> None:
        """Replace the chips: sections of (heading or None, chips); `selected` indexes all chips in order."""
        self._sections = sections
        self._chips = [chip for _, chips in sections for chip in chips]
        self.selected = None if not self._chips or selected is None else max(0, min(selected, len(self._chips) - 1))
        self._layout()
        self._scroll_to_selected()

    @property
    def count(self) -> int:
        return len(self._chips)

    def select(self, index: int) -> None:
        if not self._chips:
            return
        index = max(0, min(index, len(self._chips) - 1))
        if index != self.selected:
            self.selected = index
            self.refresh()
            self._scroll_to_selected()
            self.post_message(self.Selected(self, index))

    def select_line(self, step: int) -> None:
        """Select the token above or below the selected one, nearest to it across."""
        where = self._where(self.selected)
        if where is None:
            return
        row, x = where
        row += step
        while 0 <= row < len(self._lines) and not any(p.chip >= 0 for p in self._lines[row]):
            row += step  # skip headings
        if 0 <= row < len(self._lines):
            placed = [p for p in self._lines[row] if p.chip >= 0]
            self.select(min(placed, key=lambda p: 0 if p.x <= x < p.x + cell_len(p.text) else abs(p.x - x)).chip)

    # -- layout and drawing

    def on_resize(self, event: events.Resize) -> None:
        self._layout()

    def _layout(self) -> None:
        width = max(1, self.scrollable_content_region.width)
        self._lines = []
        first = 0
        for heading, chips in self._sections:
            if heading is not None:
                self._lines.append([Placed(0, heading[:width], -1)])
            self._lines += _wrap(chips, width, first)
            first += len(chips)
        self.virtual_size = Size(width, len(self._lines))
        self.refresh()

    def render_line(self, y: int) -> Strip:
        row = y + self.scroll_offset.y
        base = self.rich_style
        width = self.scrollable_content_region.width
        if row >= len(self._lines):
            return Strip.blank(width, base)
        segments = []
        for placed in self._lines[row]:
            segments.append(Segment(placed.text, base + self._style(placed.chip)))
        return Strip(segments).adjust_cell_length(width, base)

    def _style(self, index: int) -> Style:
        if index < 0:
            return self.get_component_rich_style("token-strip--heading", partial=True) if index == -1 else Style()
        chip = self._chips[index]
        style = chip.background or self.get_component_rich_style(f"token-strip--{chip.tone}", partial=True)
        if index == self.selected:
            style += self.get_component_rich_style("token-strip--selected", partial=True)
        return style

    def _where(self, index: int | None) -> tuple[int, int] | None:
        """The line and x of a chip's first cell."""
        for row, line in enumerate(self._lines):
            for placed in line:
                if placed.chip == index:
                    return row, placed.x
        return None

    def _scroll_to_selected(self) -> None:
        where = self._where(self.selected)
        if where is not None:
            self.scroll_to_region(Region(0, where[0], 1, 1), animate=False, immediate=True)

    def on_click(self, event: events.Click) -> None:
        row = event.y + self.scroll_offset.y
        if 0 <= row < len(self._lines):
            for placed in self._lines[row]:
                if placed.chip >= 0 and placed.x <= event.x < placed.x + cell_len(placed.text):
                    self.select(placed.chip)
                    return


def _wrap(chips: list[Chip], width: int, first: int) -> list[Line]:
    """Chips in reading order (numbered from `first`), a line break where the text has one or where the
    next chip does not fit; a chip wider than the strip is cut over whole lines."""
    lines: list[Line] = [[]]
    x = 0
    for index, chip in enumerate(chips, start=first):
        if x and x + cell_len(chip.lead + chip.text) > width:
            lines.append([])
            x = 0
        elif x and chip.lead:
            lines[-1].append(Placed(x, chip.lead, -2))
            x += cell_len(chip.lead)
        for part in _cut(chip.text, width):
            if x + cell_len(part) > width:
                lines.append([])
                x = 0
            lines[-1].append(Placed(x, part, index))
            x += cell_len(part)
        if chip.newline:
            lines.append([])
            x = 0
    return lines[:-1] if not lines[-1] else lines


def _cut(text: str, width: int) -> list[str]:
    """A chip's text in parts of at most `width` cells."""
    parts, part, size = [], "", 0
    for char in text:
        if part and size + cell_len(char) > width:
            parts.append(part)
            part, size = "", 0
        part += char
        size += cell_len(char)
    return [*parts, part] if part else parts
