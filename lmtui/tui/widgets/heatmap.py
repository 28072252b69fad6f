"""A grid of colour cells with labels down the side and along the top (written downwards, one column of
letters per column of cells), a cursor, and a window that scrolls over grids larger than the screen.

The Attention view draws a head's map with it (rows: queries, columns: keys) and the overview of all
layers × heads. Cells grow with the room there is (from `min_cell` to `max_cell` cells wide), so a
short text gets big squares and a long one stays whole on screen as long as it can; past that the
window scrolls and the owner fetches the rows that come into view (`Heatmap.Scrolled`).

A value is 0..1 (its colour), or None for a masked cell: drawn as a hatch on the background, so a
cell a query may not look at never reads as one it merely ignores.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.color import Color, Gradient
from textual.content import Content
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

MASKED = "╱"
CURSOR = "◆"
Values = list[float | None]


class Palette:
    """A colour scale for values in 0..1: each cell's background, with text that stays readable on it."""

    LEVELS = 64

    def __init__(self, *stops: tuple[float, str]) -> None:
        gradient = Gradient(*stops, quality=self.LEVELS)
        self._styles = []
        for level in range(self.LEVELS):
            color = gradient.get_color(level / (self.LEVELS - 1))
            self._styles.append(Style(bgcolor=color.rich_color, color=color.get_contrast_text(1.0).rich_color))

    def style(self, value: float) -> Style:
        return self._styles[round(max(0.0, min(1.0, value)) * (self.LEVELS - 1))]

    def swatch(self, width: int) -> Content:
        """The scale as a strip of `width` cells, low to high."""
        return Content.assemble(*(Content.styled(" ", f"on {self._hex(n / max(1, width - 1))}") for n in range(width)))

    def _hex(self, value: float) -> str:
        bgcolor = self.style(value).bgcolor
        assert bgcolor is not None
        return Color.from_rich_color(bgcolor).hex


VIRIDIS = Palette((0.0, "#440154"), (0.25, "#3b528b"), (0.5, "#21918c"), (0.75, "#5ec962"), (1.0, "#fde725"))


def legend(low: str = "0", high: str = "1", width: int = 12, masked: bool = True) -> Content:
    """The heatmap's colour scale and, where cells can be masked, how a masked cell looks."""
    parts = [Content(f"{low} "), VIRIDIS.swatch(width), Content(f" {high}")]
    if masked:
        parts += [Content("   "), Content.styled(MASKED * 2, "$text-muted"), Content(" masked")]
    return Content.assemble(*parts)


@dataclass(frozen=True)
class Geometry:
    """Where things go for one size: label width, cell width and height, header height, rows and columns."""

    label: int
    cell: int
    height: int  # lines per row: 2 when the rows fit twice over, for squarer cells
    header: int
    rows: int
    columns: int


class Heatmap(Widget, can_focus=False):
    COMPONENT_CLASSES = {"heatmap--label", "heatmap--label-alt", "heatmap--cursor-label", "heatmap--masked",
                         "heatmap--pending", "heatmap--corner"}
    DEFAULT_CSS = """
    Heatmap {
        height: 1fr;
        & > .heatmap--label { color: $foreground; }
        & > .heatmap--label-alt { color: $primary-lighten-2; }
        & > .heatmap--cursor-label { color: $accent; text-style: bold reverse; }
        & > .heatmap--masked { color: $foreground 35%; background: $background; }
        & > .heatmap--pending { color: $foreground 20%; }
        & > .heatmap--corner { color: $text-muted; }
    }
    """

    class Hovered(Message):
        """The mouse is over a cell (`clicked`: and pressed it)."""

        def __init__(self, heatmap: Heatmap, row: int, column: int, clicked: bool) -> None:
            super().__init__()
            self.heatmap, self.row, self.column, self.clicked = heatmap, row, column, clicked

    class Scrolled(Message):
        """Other rows came into view: the owner may need to fetch them."""

        def __init__(self, heatmap: Heatmap) -> None:
            super().__init__()
            self.heatmap = heatmap

    def __init__(self, min_cell: int = 1, max_cell: int = 3, max_label: int = 14, corner: str = "",
                 id: str | None = None) -> None:
        super().__init__(id=id)
        self.min_cell, self.max_cell, self.max_label, self.corner = min_cell, max_cell, max_label, corner
        self.row_labels: list[str] = []
        self.column_labels: list[str] = []
        self.values: dict[int, Values] = {}  # loaded rows only
        self.texts: dict[int, list[str]] = {}  # optional words inside cells (the overview's numbers)
        self.cursor = (0, 0)
        self.top = 0
        self.left = 0

    def show(self, rows: list[str], columns: list[str], values: dict[int, Values],
             texts: dict[int, list[str]] | None = None) -> None:
        """Replace the grid; the cursor and window stay where they were, as far as the new grid allows."""
        self.row_labels, self.column_labels, self.values, self.texts = rows, columns, values, texts or {}
        self.move_cursor(*self.cursor)

    def add_rows(self, values: dict[int, Values]) -> None:
        self.values = {**self.values, **values}
        self.refresh()

    def geometry(self) -> Geometry:
        width, height = self.size
        longest = max((cell_len(label) for label in [*self.row_labels, self.corner]), default=1)
        label = max(1, min(longest, self.max_label, width // 3))
        room = max(1, width - label - 1)
        columns, rows = max(1, len(self.column_labels)), max(1, len(self.row_labels))
        tallest = max((cell_len(text) for text in self.column_labels), default=1)
        header = max(1, min(tallest, 8, height // 4))
        body = max(1, height - header)
        lines = 2 if rows * 2 <= body and room // columns >= 2 * self.max_cell else 1  # room to spare: squares
        cell = max(self.min_cell, min(self.max_cell * lines, room // columns))
        return Geometry(label, cell, lines, header, max(1, body // lines), max(1, room // cell))

    def window(self) -> tuple[int, int]:
        """The rows on screen, [start, stop)."""
        return self.top, min(len(self.row_labels), self.top + self.geometry().rows)

    def move_cursor(self, row: int, column: int) -> None:
        """Put the cursor on a cell (clamped), scrolling the window to keep it in view."""
        row = max(0, min(row, len(self.row_labels) - 1))
        column = max(0, min(column, len(self.column_labels) - 1))
        self.cursor = (row, column)
        if self.size.area:  # a hidden grid has no window to scroll: it is placed when it is shown (on_resize)
            shape = self.geometry()
            self.top = max(0, min(max(self.top, row - shape.rows + 1), row, len(self.row_labels) - shape.rows))
            self.left = max(0, min(max(self.left, column - shape.columns + 1), column,
                                   len(self.column_labels) - shape.columns))
        self.refresh()
        self.post_message(self.Scrolled(self))

    def page(self) -> int:
        return self.geometry().rows

    # -- drawing

    def on_resize(self) -> None:
        self.move_cursor(*self.cursor)

    def render_line(self, y: int) -> Strip:
        shape = self.geometry()
        base = self.rich_style
        if not self.row_labels:
            return Strip.blank(self.size.width, base)
        if y < shape.header:
            segments = self._header_line(y, shape)
        else:
            row, line = divmod(y - shape.header, shape.height)
            segments = self._row_line(self.top + row, line, shape)
        return Strip(segments).adjust_cell_length(self.size.width, base)

    def _label_style(self, n: int, current: bool) -> Style:
        name = "heatmap--cursor-label" if current else ("heatmap--label", "heatmap--label-alt")[n % 2]
        return self.rich_style + self.get_component_rich_style(name, partial=True)

    def _columns(self, shape: Geometry) -> range:
        return range(self.left, min(len(self.column_labels), self.left + shape.columns))

    def _header_line(self, y: int, shape: Geometry) -> list[Segment]:
        corner = self.corner if y == shape.header - 1 else ""
        corner = set_cell_size(corner, shape.label + 1) if cell_len(corner) > shape.label else corner
        segments = [Segment(corner.rjust(shape.label) + " ", self.get_component_rich_style("heatmap--corner"))]
        for column in self._columns(shape):
            label = self.column_labels[column]
            char = label[y] if y < len(label) else " "
            if (y == shape.header - 1 and len(label) > shape.header) or cell_len(char) > shape.cell:
                char = "…"  # cut short, or a wide character in a one-cell column
            before = (shape.cell - cell_len(char)) // 2
            style = self._label_style(column, column == self.cursor[1]) if char != " " else self.rich_style
            segments += [Segment(" " * before, self.rich_style), Segment(char, style),
                         Segment(" " * (shape.cell - cell_len(char) - before), self.rich_style)]
        return segments

    def _row_line(self, row: int, line: int, shape: Geometry) -> list[Segment]:
        if row >= len(self.row_labels):
            return []
        label = self.row_labels[row] if line == 0 else ""
        if cell_len(label) > shape.label:
            label = set_cell_size(label, shape.label - 1) + "…"
        segments = [Segment(" " * (shape.label - cell_len(label)), self.rich_style),
                    Segment(label, self._label_style(row, row == self.cursor[0])), Segment(" ", self.rich_style)]
        values, texts = self.values.get(row), self.texts.get(row)
        for column in self._columns(shape):
            segments.append(self._cell(row, column, values, texts if line == 0 else None, shape.cell, line == 0))
        return segments

    def _cell(self, row: int, column: int, values: Values | None, texts: list[str] | None, width: int,
              first: bool) -> Segment:
        if values is None:
            return Segment(("·" if first else " ").center(width), self.get_component_rich_style("heatmap--pending"))
        value = values[column]
        if value is None:
            text, style = MASKED * width, self.get_component_rich_style("heatmap--masked")
        else:
            text, style = " " * width, VIRIDIS.style(value)
            if texts is not None and cell_len(texts[column]) < width:
                text = texts[column].center(width)
        if (row, column) == self.cursor and first:
            text = text if self.texts else CURSOR.center(width)
            style += Style(bold=True, underline=bool(self.texts), reverse=bool(self.texts))
        return Segment(text, style)

    # -- the mouse

    def _cell_at(self, x: int, y: int) -> tuple[int, int] | None:
        shape = self.geometry()
        if y < shape.header or x <= shape.label:
            return None
        row, column = self.top + (y - shape.header) // shape.height, self.left + (x - shape.label - 1) // shape.cell
        if row >= len(self.row_labels) or column >= min(len(self.column_labels), self.left + shape.columns):
            return None
        return row, column

    def on_mouse_move(self, event: events.MouseMove) -> None:
        cell = self._cell_at(event.x, event.y)
        if cell is not None and cell != self.cursor:
            self.post_message(self.Hovered(self, *cell, clicked=False))

    def on_click(self, event: events.Click) -> None:
        cell = self._cell_at(event.x, event.y)
        if cell is not None:
            self.post_message(self.Hovered(self, *cell, clicked=True))

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        self._scroll(3)
        event.stop()

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self._scroll(-3)
        event.stop()

    def _scroll(self, rows: int) -> None:
        shape = self.geometry()
        self.top = max(0, min(self.top + rows, len(self.row_labels) - shape.rows))
        self.refresh()
        self.post_message(self.Scrolled(self))
