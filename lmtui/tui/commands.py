"""The app's actions: their keys, footer labels and palette entries (Textual adds its system commands)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider


@dataclass(frozen=True)
class Action:
    key: str
    name: str  # the action_* method
    title: str  # in the command palette
    help: str
    footer: str = ""  # its label in the footer, if it has one there
    priority: bool = False  # only to win over an editor's own use of the key: a priority key can act
    # before the keys typed just ahead of it have reached the editor


ACTIONS = (
    Action("ctrl+r", "run", "Generate", "Generate from the prompt with the chosen strategy", footer="Generate"),
    Action("ctrl+r", "fill", "Fill masks", "Fill each mask in the text with the encoder's top candidates",
           footer="Fill masks"),  # ctrl+r for an encoder: one of the two is offered, by the model's kind
    Action("escape", "cancel", "Cancel", "Stop the generation in progress after the current step", footer="Cancel"),
    Action("ctrl+t", "compare", "Compare", "Run greedy, beam search and sampling on the prompt, side by side",
           footer="Compare"),
    Action("ctrl+s", "cycle_strategy", "Switch strategy", "Switch between greedy search, beam search and sampling",
           footer="Strategy"),
    Action("ctrl+o", "open_model", "Open model", "Open another model: a folder, a bundled one or a cached Hub id",
           footer="Open"),
    Action("ctrl+e", "export", "Export session", "Save prompt, settings, outputs and seed as JSON and Markdown",
           priority=True),  # an editor's "end of line"
    Action("f8", "copy_output", "Copy output", "Copy the output text to the clipboard"),
    Action("f9", "screenshot", "Save screenshot", "Save the screen as an SVG file in the current folder"),
    Action("ctrl+backslash", "toggle_sidebar", "Toggle sidebar", "Hide or show the prompt and decoding panel"),
    Action("ctrl+q", "quit", "Quit", "Quit lmtui", footer="Quit", priority=True),
)


class ActionsProvider(Provider):
    """Every action the app offers, by title, whether or not it has a key."""

    def _commands(self) -> list[tuple[str, str, str]]:
        commands = getattr(self.app, "palette_commands", None)
        return commands() if commands is not None else []

    async def discover(self) -> Hits:
        for title, action, help in self._commands():
            yield DiscoveryHit(title, partial(self.app.run_action, action), help=help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, action, help in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), partial(self.app.run_action, action), help=help)
