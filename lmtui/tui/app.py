"""The app: layout, keys and actions. The work happens in thread workers (`lmtui.tui.jobs`), which
only post messages; each view is its own widget under `lmtui/tui/views/`, registered in VIEWS."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.screen import ModalScreen, Screen
from textual.widget import Widget
from textual.widgets import Button, Footer, Input, TabbedContent, TabPane

from lmtui.checkpoint import bundled_example
from lmtui.errors import InvalidOption
from lmtui.tui import export, jobs
from lmtui.tui.commands import ACTIONS, ActionsProvider
from lmtui.tui.messages import (
    GenerationDone,
    GenerationFailed,
    GenerationProgress,
    JobFinished,
    LoadFailed,
    LoadProgress,
    MasksFilled,
    ModelLoaded,
)
from lmtui.tui.options import STRATEGIES
from lmtui.tui.state import AppState, Job, ModelSpec
from lmtui.tui.views.attention import AttentionView
from lmtui.tui.views.compare import CompareView
from lmtui.tui.views.loss import LossView
from lmtui.tui.views.output import OutputView
from lmtui.tui.views.steps import StepsView
from lmtui.tui.views.tokens import TokensView
from lmtui.tui.widgets.decoding import DecodingPanel
from lmtui.tui.widgets.model_bar import ModelBar, short_name
from lmtui.tui.widgets.open_model import OpenModelScreen
from lmtui.tui.widgets.prompt import PromptPanel

if TYPE_CHECKING:
    from lmtui.decoding.settings import GenerationSettings
    from lmtui.generation import GenerateResult
    from lmtui.masked import MaskPrediction
    from lmtui.session import ModelInfo, Session


@dataclass(frozen=True)
class ViewSpec:
    id: str
    title: str
    key: str
    widget: type[Widget]  # built as widget(state)


VIEWS = (
    ViewSpec("output", "Output", "f1", OutputView),
    ViewSpec("tokens", "Tokens", "f2", TokensView),
    ViewSpec("attention", "Attention", "f3", AttentionView),
    ViewSpec("loss", "Loss", "f4", LossView),
    ViewSpec("steps", "Steps", "f5", StepsView),
    ViewSpec("compare", "Compare", "f6", CompareView),
)


BUSY_ACTIONS = {"run", "fill", "compare", "open_model"}  # refused while a generation runs: esc cancels it
GENERATING = {"run", "compare", "cycle_strategy"}  # what only a model that generates offers
GENERATING_VIEWS = ("steps", "compare")  # views an encoder, which fills masks, has nothing for


class LmtuiApp(App[None], inherit_bindings=False):
    CSS_PATH = "app.tcss"
    TITLE = "lmtui"
    COMMANDS = App.COMMANDS | {ActionsProvider}
    BINDINGS = [Binding(a.key, a.name, a.footer or a.title, show=bool(a.footer), tooltip=a.help, priority=a.priority)
                for a in ACTIONS] + [
        Binding(view.key, f"show_view('{view.id}')", view.title, show=False, priority=True)  # an editor's f6, f7
        for view in VIEWS
    ] + [Binding("ctrl+c", "help_quit", show=False, system=True)]

    # What views watch (see lmtui/tui/views/__init__.py)
    info: reactive[ModelInfo | None] = reactive(None, always_update=True)
    prompt = reactive("")
    target = reactive("")
    result: reactive[GenerateResult | None] = reactive(None, always_update=True)

    def __init__(self, spec: ModelSpec | None = None) -> None:
        super().__init__()
        self.state = AppState(spec or ModelSpec())
        self.compared: dict[str, GenerateResult] = {}
        self.masks: list[MaskPrediction] | None = None
        self._previous: tuple[ModelSpec, Session, ModelInfo] | None = None  # kept while another model loads

    def compose(self) -> ComposeResult:
        yield ModelBar()
        with Horizontal(id="main"):
            with Vertical(id="sidebar"):
                yield PromptPanel()
                yield DecodingPanel()
            with TabbedContent(id="views"):
                for view in VIEWS:
                    with TabPane(view.title, id=view.id):
                        yield view.widget(self.state)
        yield Footer()

    def on_mount(self) -> None:
        self.load(self.state.spec)

    def on_unmount(self) -> None:
        if self.state.job is not None:  # quitting mid-run: the worker stops after its step
            self.state.job.cancel()

    def palette_commands(self) -> list[tuple[str, str, str]]:
        """Every action this model offers, then every view it has."""
        commands = [(action.title, action.name, f"{action.help} ({action.key})") for action in ACTIONS
                    if self._offered(action.name)]
        return commands + [(f"Show {view.title}", f"show_view('{view.id}')", f"The {view.title} view ({view.key})")
                           for view in VIEWS if self._has_view(view.id)]

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Textual's own palette entries, less the two the app offers itself."""
        yield from (command for command in super().get_system_commands(screen)
                    if command.title not in ("Quit", "Screenshot"))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if isinstance(self.screen, ModalScreen):
            return action == "quit"
        if not self._offered(action):
            return False  # hidden
        if action in BUSY_ACTIONS and self.state.busy:
            return None  # shown, but greyed out
        return True

    def _offered(self, action: str) -> bool:
        """Whether the action means anything now: cancel while a run goes, generating actions for models
        that generate, filling masks for encoders."""
        if action == "cancel":
            return self.state.busy
        encoder = self.state.kind == "encoder"
        return not ((action in GENERATING and encoder) or (action == "fill" and not encoder))

    # -- loading a model

    def load(self, spec: ModelSpec) -> None:
        """Load `spec` in a worker. The model in use is kept aside meanwhile: if the new one fails, the
        app goes back to it rather than leaving the user with nothing loaded."""
        if self.state.session is not None and self.info is not None:
            self._previous = (self.state.spec, self.state.session, self.info)
        self.state.spec, self.state.session, self.info = spec, None, None
        self.query_one(ModelBar).loading(spec.label)
        self.call_after_refresh(self.load_worker, spec)  # paint first: the worker's torch import holds the GIL

    @work(thread=True, exclusive=True, group="load")
    def load_worker(self, spec: ModelSpec) -> None:
        jobs.load(spec, self.post_message)

    def on_load_progress(self, message: LoadProgress) -> None:
        if message.spec is self.state.spec:
            self.query_one(ModelBar).progress(message.done, message.total)

    def on_model_loaded(self, message: ModelLoaded) -> None:
        if message.spec is not self.state.spec:
            return
        self.state.session, self.state.error, self._previous = message.session, None, None
        self.query_one(ModelBar).loaded(message.info)
        mask = message.session.tokenizer.special.mask
        self.query_one(PromptPanel).set_kind(message.info.kind, mask.text if mask is not None else None,
                                             bundled_example(message.info.path))
        self.query_one(DecodingPanel).set_kind(message.info.kind)
        self.query_one(OutputView).welcome(message.info.kind, mask.text if mask is not None else None)
        self.query_one(CompareView).reset()
        tabs = self.query_one(TabbedContent)
        for view_id in GENERATING_VIEWS:
            (tabs.hide_tab if message.info.kind == "encoder" else tabs.show_tab)(view_id)
        self.info, self.result, self.masks, self.compared = message.info, None, None, {}
        self.check_options()
        self.refresh_bindings()

    def on_load_failed(self, message: LoadFailed) -> None:
        if message.spec is not self.state.spec:
            return
        if self._previous is not None:
            (self.state.spec, self.state.session, info), self._previous = self._previous, None
            self.query_one(ModelBar).loaded(info)
            self.info = info
            self.refresh_bindings()  # the footer followed the kind of nothing-loaded meanwhile
            self.notify(f"{message.reason}\nStill using {short_name(info.name)}; ctrl+o opens another model.",
                        title=f"Cannot load {message.spec.label}", severity="error", timeout=12)
            return
        self.state.error = message.reason
        self.query_one(ModelBar).failed(message.spec.label)
        what = "the model" if message.spec.label in message.reason else message.spec.label
        self.query_one(OutputView).failed(f"Cannot load {what}: {message.reason}\n\n"
                                          "Press ctrl+o to open another model.")
        self.notify(message.reason, title="Cannot load the model", severity="error", timeout=8)

    def action_open_model(self) -> None:
        current = self.state.spec.model or ""
        self.push_screen(OpenModelScreen(current), self._opened)

    def _opened(self, model: str | None) -> None:
        if model:
            self.load(replace(self.state.spec, model=model))

    # -- generating

    def check_options(self) -> dict[str, Any] | None:
        self._sync_inputs()
        return self.query_one(DecodingPanel).check(self._settings)

    def _sync_inputs(self) -> None:
        """Read the editors now: a key binding can act before their Changed messages have arrived."""
        panel = self.query_one(PromptPanel)
        self.prompt, self.target = panel.prompt, panel.target if self.state.kind == "encoder-decoder" else ""

    def _settings(self, options: dict[str, Any]) -> GenerationSettings | None:
        session = self.state.session
        return session.settings(self.prompt, **options)[1] if session is not None else None

    def action_run(self) -> None:
        options = self._ready_options()
        if options is None:
            return
        self.query_one(OutputView).started(options["strategy"], self.prompt if self.state.kind == "decoder" else "")
        self.generate_worker(self._start_job(), self.prompt, [("output", with_seed(options))])
        self.query_one(TabbedContent).active = "output"  # the focus stays in the editor, to go on typing

    def action_fill(self) -> None:
        options = self._ready_options()
        if options is None:
            return
        self.fill_worker(self._start_job(), self.prompt, options["top_k"])
        self.query_one(TabbedContent).active = "output"

    def action_compare(self) -> None:
        if self._ready_options() is None:
            return
        panel = self.query_one(DecodingPanel)
        try:
            lanes = [(strategy, with_seed({**panel.options(strategy), "num_return_sequences": None}))
                     for strategy in STRATEGIES]
        except InvalidOption as error:
            self.notify(str(error), severity="error")
            return
        self.compared = {}
        self.query_one(CompareView).started(self.prompt if self.state.kind == "decoder" else "")
        self.generate_worker(self._start_job(), self.prompt, lanes)
        self.query_one(TabbedContent).active = "compare"

    def _ready_options(self) -> dict[str, Any] | None:
        """The checked options, or None (and why, in a notification) when nothing can run now."""
        if self.state.session is None:
            why = self.state.error or "the model is still loading"
            self.notify(f"Nothing to run yet: {why}.", severity="warning")
            return None
        options = self.check_options()
        if options is None:
            self.notify("Fix the decoding settings first (the message under them says what is wrong).",
                        severity="error")
        return options

    def _start_job(self) -> Job:
        self.state.job = Job()
        self.refresh_bindings()
        return self.state.job

    @work(thread=True, exclusive=True, group="generate")
    def generate_worker(self, job: Job, prompt: str, lanes: list[tuple[str, dict[str, Any]]]) -> None:
        session = self.state.session
        for lane, options in lanes:
            if session is None or job.cancelled:
                break
            jobs.generate(session, prompt, options, job, self.post_message, lane, score=lane != "output")
        self.post_message(JobFinished(job))

    @work(thread=True, exclusive=True, group="generate")
    def fill_worker(self, job: Job, text: str, top_k: int) -> None:
        if self.state.session is not None:
            jobs.fill_mask(self.state.session, text, top_k, job, self.post_message)
        self.post_message(JobFinished(job))

    def action_cancel(self) -> None:
        if self.state.job is not None:
            self.state.job.cancel()

    def on_generation_progress(self, message: GenerationProgress) -> None:
        if message.job is not self.state.job:
            return
        if message.lane == "output":
            self.query_one(OutputView).progress(message.strategy, message.text, message.step, message.max_steps)
            self.query_one(StepsView).show_steps(message.strategy, message.records, message.sequences)
        else:
            self.query_one(CompareView).progress(message.lane, message.text, message.step, message.max_steps)

    def on_generation_done(self, message: GenerationDone) -> None:
        if message.job is not self.state.job:
            return
        if message.lane == "output":
            self.masks, self.result = None, message.result
        else:
            self.compared[message.lane] = message.result
            self.query_one(CompareView).done(message.lane, message.result, message.perplexity)

    def on_generation_failed(self, message: GenerationFailed) -> None:
        if message.job is not self.state.job:
            return
        if message.lane == "output":
            self.query_one(OutputView).failed(message.reason)
        else:
            self.query_one(CompareView).failed(message.lane, message.reason)

    def on_masks_filled(self, message: MasksFilled) -> None:
        if message.job is self.state.job:
            self.masks = message.predictions
            self.query_one(OutputView).show_masks(message.predictions)

    def on_job_finished(self, message: JobFinished) -> None:
        if message.job is self.state.job:
            self.state.job = None
            self.query_one(CompareView).stopped()
            self.refresh_bindings()

    # -- editing

    @on(PromptPanel.Changed)
    @on(DecodingPanel.Changed)
    def _inputs_changed(self) -> None:
        self.check_options()

    @on(Button.Pressed, "#run")
    @on(Input.Submitted, "DecodingPanel Input")
    def _run_pressed(self) -> None:
        self.run_action("fill" if self.state.kind == "encoder" else "run")

    def action_cycle_strategy(self) -> None:
        self.query_one(DecodingPanel).cycle_strategy()

    # -- views and files

    def _has_view(self, view_id: str) -> bool:
        return not (view_id in GENERATING_VIEWS and self.state.kind == "encoder")

    def action_show_view(self, view_id: str) -> None:
        if not self._has_view(view_id):
            self.notify("An encoder fills masks and does not generate: it has no steps to show or strategies "
                        "to compare.", severity="warning")
            return
        self.query_one(TabbedContent).active = view_id
        view = self.query_one(f"#{view_id}", TabPane).children[0]
        focusable = [view] if view.focusable else [w for w in view.query("*") if w.focusable]
        if focusable:
            focusable[0].focus()

    def action_toggle_sidebar(self) -> None:
        sidebar = self.query_one("#sidebar")
        sidebar.display = not sidebar.display

    def action_copy_output(self) -> None:
        text = export.output_text(self.result, self.masks)
        if not text:
            self.notify("Nothing to copy yet.", severity="warning")
            return
        self.copy_to_clipboard(text)
        self.notify(f"Copied {len(text)} characters of output.")

    def action_export(self) -> None:
        target = self.target if self.state.kind == "encoder-decoder" else None
        runs = {"output": self.result} if self.result is not None else {}
        record = export.session_record(self.info, self.prompt, target, {**runs, **self.compared}, self.masks)
        json_path, md_path = export.write(record, Path.cwd())
        self.notify(f"Saved {json_path.name} and {md_path.name} in {json_path.parent}", title="Exported")

    def action_screenshot(self) -> None:
        path = self.save_screenshot(path=str(Path.cwd()))
        self.notify(f"Saved {Path(path).name}", title="Screenshot")


def with_seed(options: dict[str, Any]) -> dict[str, Any]:
    """Sampling without a seed draws one here, so the run can be repeated and exported with it."""
    if options.get("strategy") == "sample" and options.get("seed") is None:
        return {**options, "seed": random.randrange(2**31)}
    return options


def run(model: str | None = None, device: str = "auto", dtype: str = "auto") -> None:
    LmtuiApp(ModelSpec(model, device, dtype)).run()
