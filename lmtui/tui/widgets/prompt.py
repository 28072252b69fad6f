"""The text editors: the prompt (an encoder-decoder's source), and the target an encoder-decoder's
decoder reads when it is inspected (teacher forced); the target is hidden for other kinds."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import TextArea

TITLES = {
    "decoder": ("Prompt", "Type a prompt, then ctrl+r to generate"),
    "encoder-decoder": ("Source", "Type the source text (what the encoder reads)"),
    "encoder": ("Text", "Type a text with a mask token, then ctrl+r to fill it"),
}


class PromptPanel(Vertical):
    DEFAULT_CSS = """
    PromptPanel {
        height: 1fr;
        min-height: 5;
        & > TextArea {
            height: 1fr; padding: 0 1; border: round $border-blurred; border-title-color: $foreground-muted;
        }
        & > TextArea:focus { border: round $border; border-title-color: $accent; }
        & > #target { display: none; }
        &.-encoder-decoder > #target { display: block; }
    }
    """

    class Changed(Message):
        """The prompt or the target was edited."""

    def compose(self) -> ComposeResult:
        yield TextArea(id="prompt", soft_wrap=True, tab_behavior="focus", placeholder=TITLES["decoder"][1])
        yield TextArea(id="target", soft_wrap=True, tab_behavior="focus",
                       placeholder="Type the target (the decoder side, for inspection)")

    def on_mount(self) -> None:
        self.query_one("#prompt", TextArea).border_title = TITLES["decoder"][0]
        self.query_one("#target", TextArea).border_title = "Target"

    def set_kind(self, kind: str, mask_token: str | None = None) -> None:
        self.set_class(kind == "encoder-decoder", "-encoder-decoder")
        title, placeholder = TITLES.get(kind, TITLES["decoder"])
        prompt = self.query_one("#prompt", TextArea)
        prompt.border_title = title
        if kind == "encoder" and mask_token is not None:
            placeholder = f"Type a text with {mask_token} where a token should be predicted, then ctrl+r"
        prompt.placeholder = Content(placeholder)

    @property
    def prompt(self) -> str:
        return self.query_one("#prompt", TextArea).text

    @property
    def target(self) -> str:
        return self.query_one("#target", TextArea).text

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        event.stop()
        self.post_message(self.Changed())
