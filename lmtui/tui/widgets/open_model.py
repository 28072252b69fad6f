"""The "open model" dialog: type a folder (completed as you type) or a cached Hub id, or pick one of
the bundled models and cached Hub ids listed below. Dismissed with the chosen name, or None."""

from __future__ import annotations

import os
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import Suggester
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from lmtui.checkpoint import WEIGHTS


class FolderSuggester(Suggester):
    """Completes the last part of a path with the first folder that starts with it."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        if not value or ("/" not in value and not value.startswith(("~", "."))):
            return None
        head, _, prefix = value.rpartition("/")
        folder = Path(head or "/").expanduser()
        try:
            names = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir() and not
                           entry.name.startswith(".") and entry.name.startswith(prefix))
        except OSError:
            return None
        return f"{head}/{names[0]}/" if names and names[0] != prefix else None


def bundled_models() -> list[Path]:
    """The bundled checkpoints: folders under weights/ with a config.json."""
    if not WEIGHTS.is_dir():
        return []
    return sorted(path for path in WEIGHTS.iterdir() if (path / "config.json").is_file())


def cached_hub_ids() -> list[str]:
    """Hub ids with a snapshot in the local Hugging Face cache (lmtui never downloads)."""
    from huggingface_hub.constants import HF_HUB_CACHE

    try:
        entries = os.scandir(HF_HUB_CACHE)
    except OSError:
        return []
    with entries:
        return sorted(entry.name[len("models--"):].replace("--", "/") for entry in entries
                      if entry.name.startswith("models--") and entry.is_dir())


class OpenModelScreen(ModalScreen[str | None]):
    DEFAULT_CSS = """
    OpenModelScreen {
        align: center middle;
        & > Vertical {
            width: 80%; max-width: 90; height: auto; max-height: 80%;
            border: round $border; background: $surface; padding: 0 1;
        }
        & Label { color: $text-muted; margin-top: 1; }
        & OptionList { height: auto; max-height: 12; border: none; padding: 0; }
    }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Close"), Binding("tab", "complete", "Complete", show=False)]

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Open a model"
            yield Label("A folder, a model.safetensors in one, or a Hub id in the local cache:")
            yield Input(self.current, id="model", suggester=FolderSuggester(), select_on_focus=False)
            yield Label("Bundled and cached models:")
            yield OptionList(*self._choices(), markup=False)

    def _choices(self) -> list[Option]:
        options = [Option(f"{path.name}  (bundled, {path})", id=str(path)) for path in bundled_models()]
        options += [Option(f"{hub_id}  (Hugging Face cache)", id=hub_id) for hub_id in cached_hub_ids()]
        return options or [Option("no bundled or cached models found", disabled=True)]

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value.strip():
            self.dismiss(event.value.strip())

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def action_complete(self) -> None:
        """Tab takes the suggested completion when there is one, else moves on."""
        field = self.query_one(Input)
        if field.has_focus and field._suggestion:
            field.value = field._suggestion
            field.cursor_position = len(field.value)
        else:
            self.focus_next()
