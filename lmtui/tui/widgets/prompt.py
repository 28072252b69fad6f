"""The text editors: the prompt (an encoder-decoder's source), and the target an encoder-decoder's
decoder reads when it is inspected (teacher forced); the target is hidden for other kinds."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import TextArea

TITLES = {  # kind -> (editor title, hint); {e} is where a bundled model's example goes
    "decoder": ("Prompt", "Type a prompt{e}, then ctrl+r to generate"),
    "encoder-decoder": ("Source", "Source text{e} for the encoder, then ctrl+r to generate"),
    "encoder": ("Text", "Type a text with {mask} where a token should go{e}, then ctrl+r to fill it"),
}
TARGET_HINT = "Target{e}: what the decoder reads in the Tokens, Attention and Loss views"


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
        yield TextArea(id="prompt", soft_wrap=True, tab_behavior="focus",
                       placeholder=TITLES["decoder"][1].format(e=""))
        yield TextArea(id="target", soft_wrap=True, tab_behavior="focus",
                       placeholder=TARGET_HINT.format(e=""))

    def on_mount(self) -> None:
        self.query_one("#prompt", TextArea).border_title = TITLES["decoder"][0]
        self.query_one("#target", TextArea).border_title = "Target"

    def set_kind(self, kind: str, mask_token: str | None = None,
                 example: tuple[str, str | None] | None = None) -> None:
        """Title and hint the editors for this kind of model; `example`: a prompt (and target) to suggest."""
        self.set_class(kind == "encoder-decoder", "-encoder-decoder")
        title, hint = TITLES.get(kind, TITLES["decoder"])
        source, target = example if example is not None else (None, None)
        prompt = self.query_one("#prompt", TextArea)
        prompt.border_title = title
        prompt.placeholder = Content(hint.format(e=f" (e.g. {source})" if source else "",
                                                 mask=mask_token or "a mask token"))
        self.query_one("#target", TextArea).placeholder = Content(
            TARGET_HINT.format(e=f" (e.g. {target})" if target else ""))

    @property
    def prompt(self) -> str:
        return self.query_one("#prompt", TextArea).text

    @property
    def target(self) -> str:
        return self.query_one("#target", TextArea).text

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        event.stop()
        self.post_message(self.Changed())
