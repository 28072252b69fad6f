"""The top line: which model is loaded (name, family, size, dtype, device, attention backend), a
progress bar while one loads, or why it could not be loaded."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import ProgressBar, Static

from lmtui.tui.text import count

if TYPE_CHECKING:
    from lmtui.session import ModelInfo

SEPARATOR = ("  │  ", "$foreground-muted")


class ModelBar(Horizontal):
    DEFAULT_CSS = """
    ModelBar {
        height: 1;
        background: $panel;
        & > #summary { width: 1fr; height: 1; text-wrap: nowrap; text-overflow: ellipsis; }
        & > ProgressBar { width: auto; height: 1; display: none; padding: 0 1; }
        &.-loading > ProgressBar { display: block; }
        &.-failed > #summary { background: $error 30%; }
    }
    """

    def compose(self) -> ComposeResult:
        yield Static(id="summary", markup=False)
        yield ProgressBar(show_eta=False, id="progress")

    def loading(self, label: str) -> None:
        self.set_classes("-loading")
        self.query_one(ProgressBar).update(total=None, progress=0)
        self._show(Content.assemble(("lmtui ", "bold $accent"), "loading ", (label, "bold"), " …"))

    def progress(self, done: int, total: int) -> None:
        self.query_one(ProgressBar).update(total=total, progress=done)

    def loaded(self, info: ModelInfo) -> None:
        self.set_classes("")
        kind = info.family if info.kind == "decoder" else f"{info.family} {info.kind}"
        parts: list[str | tuple[str, str]] = [("lmtui ", "bold $accent"), (short_name(info.name), "bold")]
        for part in (kind, f"{count(info.parameters)} params", info.dtype, info.device, info.attention_backend):
            parts += [SEPARATOR, part]
        self._show(Content.assemble(*parts))
        self.tooltip = info.path

    def failed(self, label: str) -> None:
        """Why is shown where there is room for it (the Output view); here, what and what next."""
        self.set_classes("-failed")
        self._show(Content.assemble(("lmtui ", "bold $accent"), "cannot load ", (label, "bold"),
                                    SEPARATOR, ("ctrl+o", "bold"), " opens another model"))

    def _show(self, content: Content) -> None:
        self.query_one("#summary", Static).update(content)


def short_name(name: str) -> str:
    """A folder's own name (its full path is the tooltip); a Hub id as it is."""
    path = Path(name).expanduser()
    return path.resolve().name if path.exists() else name
