"""The Attention view: one head's map as a heatmap (queries down the side, keys along the top, masked
cells hatched), a cursor that reads out the cell under it, keys to move through layers, heads and
kinds, and an overview of every layer × head coloured by a summary, to find the heads worth a look.

The model runs once per text (in a worker); the `AttentionView` it returns is kept, so moving to
another head only computes that head's rows on screen (also in a worker: a long text takes a moment).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import Static

from lmtui.tui.jobs import one_line
from lmtui.tui.state import AppState
from lmtui.tui.views import readouts
from lmtui.tui.views.inspecting import Follow, Source, read_source, source_key_offered
from lmtui.tui.views.readouts import PAD, SUMMARIES, Sides
from lmtui.tui.widgets.heatmap import Heatmap, legend

if TYPE_CHECKING:
    from lmtui.inspect.attention import AttentionMap, AttentionView, HeadSummary
    from lmtui.session import Session

WHOLE = 20_000  # cells: a map this small is fetched whole, a larger one a few screens of rows at a time
Key = tuple[int, str, int, int]  # (serial, kind, layer, head): which map a message is about


@dataclass
class Recorded(Message, bubble=False):
    serial: int
    view: AttentionView
    sides: Sides


@dataclass
class Mapped(Message, bubble=False):
    key: Key
    map: AttentionMap


@dataclass
class Summarised(Message, bubble=False):
    serial: int
    kind: str
    summaries: list[HeadSummary]


@dataclass
class Failed(Message, bubble=False):
    serial: int
    reason: str


class AttentionView(Vertical, can_focus=True):
    DEFAULT_CSS = """
    AttentionView {
        padding: 0 1;
        & > #cell, & > #legend { height: 1; text-wrap: nowrap; text-overflow: ellipsis; }
        & > #status { height: auto; max-height: 3; color: $text-muted; }
        & > #status.-error { color: $text-error; }
        & > #heads { display: none; }
        &.-overview > #heads { display: block; }
        &.-overview > #map { display: none; }
    }
    """
    BINDINGS = [
        Binding("left_square_bracket", "layer(-1)", "Layer", key_display="[ ]"),
        Binding("right_square_bracket", "layer(1)", show=False),
        Binding("comma", "head(-1)", "Head", key_display=", ."),
        Binding("full_stop", "head(1)", show=False),
        Binding("k", "kind", "Kind"),
        Binding("o", "overview", "All heads"),
        Binding("g", "source", "Prompt/output"),
        Binding("s", "summary", "Summary", show=False),
        Binding("p", "pad", "Padding", show=False),
        Binding("enter", "open", "Open head", show=False),
        Binding("up", "move(-1, 0)", show=False),
        Binding("down", "move(1, 0)", show=False),
        Binding("left", "move(0, -1)", show=False),
        Binding("right", "move(0, 1)", show=False),
        Binding("pageup", "page(-1)", show=False),
        Binding("pagedown", "page(1)", show=False),
        Binding("home", "move(-1000000, -1000000)", show=False),
        Binding("end", "move(1000000, 1000000)", show=False),
    ]

    def __init__(self, state: AppState) -> None:
        super().__init__()
        self.state = state
        self.follow = Follow(self, self.update)
        self.from_generation = False
        self.padded = False
        self.summary = 0  # index into SUMMARIES
        self.kind, self.layer_index, self.head_index = "self", 0, 0
        self._kinds: tuple[str, ...] = ()  # the kinds of the last text
        self._serial = 0
        self._source: Source | None = None
        self._view: AttentionView | None = None
        self._sides: Sides = {}
        self._summaries: dict[str, list[HeadSummary]] = {}
        self._shown: Key | None = None  # the map whose rows the heatmap holds
        self._asked: tuple[Key, tuple[int, int]] | None = None  # the rows last asked of a worker
        self._request: tuple[object, ...] | None = None  # (session, source, padded) of the model's last run

    def compose(self) -> ComposeResult:
        yield Static(id="status", markup=False)
        yield Heatmap(corner="query╲key", id="map")
        yield Heatmap(min_cell=2, max_cell=5, max_label=8, corner="head", id="heads")
        yield Static(id="cell", markup=False)
        yield Static(id="legend", markup=False)

    def on_mount(self) -> None:
        self.follow.start()

    def on_show(self) -> None:
        self.follow.on_show()

    def on_hide(self) -> None:
        self.follow.on_hide()

    # -- running the model

    def update(self) -> None:
        session = self.state.session
        source = None if session is None else read_source(
            session.kind, self.app.prompt, self.app.target, self.app.result,  # type: ignore[attr-defined]
            self.from_generation)
        request = (session, source, self.padded)
        if request == self._request:
            return  # the same text as last time (a generation ended, the view was shown again): keep its state
        self._request = request
        self._serial += 1
        self._view, self._sides, self._summaries, self._shown, self._asked = None, {}, {}, None, None
        if session is None:
            self._message(self.state.error or "The attention maps appear once the model has loaded.",
                          self.state.error is not None)
            return
        if isinstance(source, str):
            self._message(source)
            return
        assert source is not None
        self._source = source
        self._status(Content.styled(f"running the model on {source.label} …", "$text-muted"))
        self.record_worker(self._serial, session, source, self.padded)

    @work(thread=True, exclusive=True, group="attention")
    def record_worker(self, serial: int, session: Session, source: Source, padded: bool) -> None:
        try:
            view, sides = readouts.record(session, source, padded)
        except Exception as error:  # too long, no padding token, …: one line in the view
            self.post_message(Failed(serial, one_line(error)))
            return
        self.post_message(Recorded(serial, view, sides))

    def on_recorded(self, message: Recorded) -> None:
        if message.serial != self._serial:
            return
        self._view, self._sides = message.view, message.sides
        kinds = message.view.kinds
        if self.kind not in kinds or ("cross" in kinds and "cross" not in self._kinds):  # a target came: show it
            self.kind = "cross" if "cross" in kinds else kinds[0]
        self._kinds = kinds
        self._clamp()
        self._refresh()

    def on_failed(self, message: Failed) -> None:
        if message.serial == self._serial:
            self._message(message.reason, error=True)

    # -- one head's map

    def _key(self) -> Key:
        return (self._serial, self.kind, self.layer_index, self.head_index)

    def _fetch_rows(self) -> None:
        """Ask for the rows on screen of the current map, unless the heatmap has them or they were asked."""
        grid = self.query_one("#map", Heatmap)
        if self._view is None or not grid.row_labels:
            return
        key, (start, stop) = self._key(), grid.window()
        if self._shown == key and all(row in grid.values for row in range(start, stop)):
            return
        if self._asked is not None and self._asked[0] == key and _covers(self._asked[1], (start, stop)):
            return
        rows, keys = len(grid.row_labels), len(grid.column_labels)
        span = stop - start
        want = (0, rows) if rows * keys <= WHOLE else (max(0, start - span), min(rows, stop + span))
        self._asked = (key, want)
        self.map_worker(key, self._view, want)

    @work(thread=True, exclusive=True, group="attention-map")
    def map_worker(self, key: Key, view: AttentionView, rows: tuple[int, int]) -> None:
        _, kind, layer, head = key
        try:
            head_map = view.map(kind, layer, head, rows=rows)
        except Exception as error:
            self.post_message(Failed(key[0], one_line(error)))
            return
        self.post_message(Mapped(key, head_map))

    def on_mapped(self, message: Mapped) -> None:
        if message.key != self._key():
            return
        head_map = message.map
        values = {head_map.first_query + n: [None if hidden else weight for weight, hidden in zip(weights, masked)]
                  for n, (weights, masked) in enumerate(zip(head_map.weights, head_map.masked))}
        grid = self.query_one("#map", Heatmap)
        if self._shown == message.key:
            grid.add_rows(values)
        else:
            queries, keys = self._sides[self.kind]
            grid.show(queries, keys, values)
            self._shown = message.key
        self._describe()

    def on_heatmap_scrolled(self, message: Heatmap.Scrolled) -> None:
        if message.heatmap.id == "map":
            self._fetch_rows()

    def on_heatmap_hovered(self, message: Heatmap.Hovered) -> None:
        message.heatmap.move_cursor(message.row, message.column)
        if message.clicked:
            self.focus()
            if message.heatmap.id == "heads":
                self.action_open()
                return
        self._describe()

    # -- the overview of every head

    def _fetch_summaries(self) -> None:
        if self._view is not None and self.kind not in self._summaries:
            self._status_line(f"summarising every {self.kind} head …")
            self.summary_worker(self._serial, self._view, self.kind)

    @work(thread=True, exclusive=True, group="attention-summaries")
    def summary_worker(self, serial: int, view: AttentionView, kind: str) -> None:
        try:
            summaries = view.summaries(kind)
        except Exception as error:
            self.post_message(Failed(serial, one_line(error)))
            return
        self.post_message(Summarised(serial, kind, summaries))

    def on_summarised(self, message: Summarised) -> None:
        if message.serial == self._serial:
            self._summaries[message.kind] = message.summaries
            self._refresh()

    def _show_overview(self) -> None:
        summaries = self._summaries.get(self.kind)
        if summaries is None:
            self._fetch_summaries()
            return
        name = self._summary_name()
        rows, columns, values, texts = readouts.summary_grid(summaries, name)
        grid = self.query_one("#heads", Heatmap)
        grid.show(rows, columns, values, texts)

    def _summary_name(self) -> str:
        available = [name for name in SUMMARIES if self.kind != "cross" or name in ("entropy", "first")]
        return available[self.summary % len(available)]

    # -- keys

    def action_layer(self, step: int) -> None:
        if self._view is not None:
            self.layer_index = (self.layer_index + step) % self._view.layers(self.kind)
            self._refresh()

    def action_head(self, step: int) -> None:
        if self._view is not None:
            self.head_index = (self.head_index + step) % self._view.heads(self.kind)
            self._refresh()

    def action_kind(self) -> None:
        if self._view is not None and len(self._view.kinds) > 1:
            kinds = self._view.kinds
            self.kind = kinds[(kinds.index(self.kind) + 1) % len(kinds)]
            self._clamp()
            self._refresh()

    def action_overview(self) -> None:
        self.toggle_class("-overview")
        self._refresh()

    def action_summary(self) -> None:
        self.summary += 1
        if self.has_class("-overview"):
            self._refresh()

    def action_open(self) -> None:
        """From the overview: show the head under its cursor."""
        if self.has_class("-overview") and self._view is not None:
            self.layer_index, self.head_index = self.query_one("#heads", Heatmap).cursor
            self.remove_class("-overview")
            self._refresh()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "source":
            return source_key_offered(self.state.kind, self.from_generation)
        return True

    def action_source(self) -> None:
        self.from_generation = not self.from_generation
        self.refresh_bindings()
        self.follow.now()

    def action_pad(self) -> None:
        self.padded = not self.padded
        self.follow.now()

    def action_move(self, rows: int, columns: int) -> None:
        grid = self._grid()
        row, column = grid.cursor
        grid.move_cursor(row + rows, column + columns)
        self._describe()

    def action_page(self, pages: int) -> None:
        self.action_move(pages * self._grid().page(), 0)

    # -- drawing

    def _grid(self) -> Heatmap:
        return self.query_one("#heads" if self.has_class("-overview") else "#map", Heatmap)

    def _clamp(self) -> None:
        assert self._view is not None
        self.layer_index = min(self.layer_index, self._view.layers(self.kind) - 1)
        self.head_index = min(self.head_index, self._view.heads(self.kind) - 1)

    def _refresh(self) -> None:
        """After the head, kind or mode changed: the status line, then the map or the overview."""
        if self._view is None:
            return
        self._status_line()
        if self.has_class("-overview"):
            self.query_one("#heads", Heatmap).move_cursor(self.layer_index, self.head_index)
            self._show_overview()
        else:
            grid = self.query_one("#map", Heatmap)
            if not grid.row_labels or self._shown is None or self._shown[1] != self.kind:
                queries, keys = self._sides[self.kind]
                grid.show(queries, keys, {})
                self._shown = None
            self._fetch_rows()
        self._describe()

    def _status_line(self, note: str = "") -> None:
        """Which head (or, in the overview, which summary) of which kind, and of what text."""
        assert self._view is not None and self._source is not None
        view, kind = self._view, self.kind
        source = self._source.label.removeprefix("the ") + (f" + {PAD} padding" if self.padded else "")
        if not note and view.kinds == ("encoder",) and not self.from_generation:
            note = "· a target adds decoder and cross"
        summary = self._summary_name() if self.has_class("-overview") else None
        layer, head = (self.layer_index, view.layers(kind)), (self.head_index, view.heads(kind))
        self._status(readouts.status_line(kind, layer, head, source, summary, note))

    def _describe(self) -> None:
        """The line under the grid: the cell under the cursor; and the legend."""
        if self._view is None:
            return
        if self.has_class("-overview"):
            summaries = self._summaries.get(self.kind)
            layer, head = self.query_one("#heads", Heatmap).cursor
            heads = self._view.heads(self.kind)
            text = readouts.describe_head(summaries[layer * heads + head]) if summaries else Content("")
            key = readouts.summary_legend(summaries, self._summary_name()) if summaries else Content("")
        else:
            grid = self.query_one("#map", Heatmap)
            text = readouts.describe_cell(grid, self.kind, self._shown == self._key(), self._decoding())
            key = legend("0", "1")
        self.query_one("#cell", Static).update(text)
        self.query_one("#legend", Static).update(key)

    def _decoding(self) -> bool:
        """Whether the map's queries are a decoder's tokens, each predicting the next."""
        return self.kind in ("decoder", "cross") or (self.kind == "self" and self.state.kind == "decoder")

    def _message(self, text: str, error: bool = False) -> None:
        """Nothing to draw: say why (a hint, or an error in one line)."""
        self._view = None
        for grid in self.query(Heatmap):
            grid.show([], [], {})
        self.query_one("#cell", Static).update("")
        self.query_one("#legend", Static).update("")
        self._status(Content(text), error)

    def _status(self, content: Content, error: bool = False) -> None:
        status = self.query_one("#status", Static)
        status.set_class(error, "-error")
        status.update(content)


def _covers(outer: tuple[int, int], inner: tuple[int, int]) -> bool:
    return outer[0] <= inner[0] and inner[1] <= outer[1]
