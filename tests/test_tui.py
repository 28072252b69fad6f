"""The app driven with Pilot on the bundled weights/tiny-gpt: load, type, decode, cancel, compare, export.

The helpers here (`start`, `loaded`, `type_text`, `finished`) are shared by the other test_tui files.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from textual import events
from textual.pilot import Pilot
from textual.widgets import Input, OptionList, Static, TextArea

from lmtui.checkpoint import DEFAULT_MODEL
from lmtui.decoding.settings import GenerationSettings
from lmtui.generation import GeneratedText, GenerateResult
from lmtui.session import Session
from lmtui.tui.app import VIEWS, LmtuiApp
from lmtui.tui.commands import ACTIONS
from lmtui.tui.state import ModelSpec
from lmtui.tui.views.compare import CompareView
from lmtui.tui.views.steps import StepsView
from lmtui.tui.widgets.decoding import DecodingPanel
from lmtui.tui.widgets.model_bar import ModelBar

SIZE = (100, 30)
PROMPT = "Return the"

pytestmark = [pytest.mark.asyncio,
              pytest.mark.skipif(not DEFAULT_MODEL.is_dir(), reason="the bundled weights/tiny-gpt is not there")]


def start(model: Path | str | None = None) -> LmtuiApp:
    return LmtuiApp(ModelSpec(str(model) if model is not None else None, device="cpu"))


async def wait_for(pilot: Pilot, condition: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out; the app shows {text_of(pilot, 'OutputView #status')!r}"
        await pilot.pause(0.05)


async def loaded(pilot: Pilot) -> None:
    """Wait until the model asked for has loaded, or failed to."""
    app = pilot.app
    await wait_for(pilot, lambda: app.state.session is not None or app.state.error is not None)
    await app.workers.wait_for_complete()
    await pilot.pause()


async def finished(pilot: Pilot) -> None:
    """Wait until the job in progress (a generation, a compare, a fill-mask) is over and shown."""
    await wait_for(pilot, lambda: not pilot.app.state.busy)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def type_text(pilot: Pilot, text: str, into: str = "#prompt") -> None:
    pilot.app.query_one(into, TextArea).focus()
    await pilot.press(*["space" if char == " " else char for char in text])


def set_field(pilot: Pilot, name: str, value: str) -> None:
    pilot.app.query_one(f"#{name}", Input).value = value


def burst(app: LmtuiApp, keys: list[tuple[str, str | None]]) -> None:
    """(key, character) pairs as a terminal delivers them, without waiting for the app in between."""
    for key, char in keys:
        event = events.Key(key, char)
        event.set_sender(app)
        app._driver.send_message(event)


def text_of(pilot: Pilot, selector: str) -> str:
    return str(pilot.app.query_one(selector, Static).render())


@pytest.fixture(scope="module")
def session() -> Session:
    return Session(device="cpu")


async def test_paints_before_loading_then_shows_the_model() -> None:
    app = start()
    async with app.run_test(size=SIZE) as pilot:
        assert "loading" in text_of(pilot, "ModelBar #summary")  # the first frame, before torch
        await loaded(pilot)
        summary = text_of(pilot, "ModelBar #summary")
        assert app.info is not None and app.state.error is None
        for part in ("tiny-gpt", "gpt2", "params", "float32", "cpu", app.info.attention_backend):
            assert part in summary
        assert not app.query_one(ModelBar).has_class("-loading")


async def test_greedy_output_is_the_sessions(session: Session) -> None:
    app = start()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await type_text(pilot, PROMPT)
        await pilot.press("ctrl+r")
        await finished(pilot)
        expected = session.generate(PROMPT).sequences[0]
        assert app.result is not None and app.result.strategy == "greedy"
        assert app.result.sequences[0].text == expected.text
        assert app.result.sequences[0].token_ids == expected.token_ids
        assert PROMPT + expected.text in text_of(pilot, "OutputView #text")


async def test_a_run_reads_the_prompt_as_it_is_now(session: Session) -> None:
    """Keys typed in a burst (a fast typist, a paste in a terminal) and ctrl+r right after them: the
    run must see every character, however far the editor's messages lag behind."""
    app = start()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        app.query_one("#prompt", TextArea).focus()
        burst(app, [("space" if c == " " else c, c) for c in PROMPT] + [("ctrl+r", None)])
        await wait_for(pilot, lambda: app.result is not None)
        await finished(pilot)
        assert app.result.prompt == PROMPT
        assert app.result.sequences[0].text == session.generate(PROMPT).sequences[0].text


async def test_strategies_switch_and_show_their_fields() -> None:
    app = start()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        panel = app.query_one(DecodingPanel)
        shown = {strategy: [] for strategy in ("greedy", "beam", "sample")}
        for strategy in shown:
            assert panel.mode == strategy
            shown[strategy] = [row.field.id for row in panel.query("Row") if row.display]
            await pilot.press("ctrl+s")
        assert panel.mode == "greedy"  # round and back
        burst(app, [("ctrl+s", None)] * 4)
        await pilot.pause(0.2)
        assert panel.mode == "beam" and app.query_one("#num_beams", Input).display
        await pilot.click("StrategySwitch", offset=(len("○ greedy  ○ beam  ○ s"), 0))
        assert panel.mode == "sample" and app.query_one("#temperature", Input).display
        assert "num_beams" in shown["beam"] and "num_beams" not in shown["greedy"]
        assert {"temperature", "top_k", "top_p", "min_p", "seed"} <= set(shown["sample"])
        assert "max_new_tokens" in shown["greedy"] and "early_stopping" in shown["beam"]
        # empty fields show the checkpoint's defaults (generation_config.json: max_new_tokens 60)
        assert app.query_one("#max_new_tokens", Input).placeholder == "60"


async def test_bad_values_are_refused_as_typed() -> None:
    app = start()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        panel = app.query_one(DecodingPanel)
        panel.set_strategy("sample")
        set_field(pilot, "top_p", "2")
        await pilot.pause()
        assert "top-p must be in (0, 1], not 2.0" in text_of(pilot, "#problem")
        assert app.query_one("#top_p", Input).has_class("-invalid")
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert app.result is None and not app.state.busy  # nothing ran
        set_field(pilot, "top_p", "0.9")
        set_field(pilot, "top_k", "many")
        await pilot.pause()
        assert "top-k 'many' is not a whole number" in text_of(pilot, "#problem")
        set_field(pilot, "top_k", "")
        await pilot.pause()
        assert not app.query_one("#top_p", Input).has_class("-invalid")
        assert "defaults" in text_of(pilot, "#problem")


async def test_sampling_draws_a_seed_and_beams_fill_the_steps_view(session: Session) -> None:
    app = start()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await type_text(pilot, PROMPT)
        app.query_one(DecodingPanel).set_strategy("sample")
        await pilot.press("ctrl+r")
        await finished(pilot)
        seed = app.result.settings.seed
        assert app.result.strategy == "sample" and seed is not None  # drawn, so the run can be repeated
        assert app.result.sequences[0].text == session.generate(PROMPT, strategy="sample", seed=seed).sequences[0].text
        app.query_one(DecodingPanel).set_strategy("beam")
        set_field(pilot, "num_beams", "3")
        set_field(pilot, "num_return_sequences", "2")
        await pilot.press("ctrl+r")
        await finished(pilot)
        expected = session.generate(PROMPT, strategy="beam", num_beams=3, num_return_sequences=2)
        assert [s.text for s in app.result.sequences] == [s.text for s in expected.sequences]
        assert "#2" in text_of(pilot, "OutputView #text")  # every sequence with its score
        await pilot.press("f5")
        await pilot.pause()
        assert app.query_one("TabbedContent").active == "steps"
        assert app.query_one("StepsView OptionList", OptionList).option_count == len(expected.steps)
        detail = text_of(pilot, "StepsView #detail Static")
        assert "beam tree" in detail and "pruned" in detail


async def test_steps_view_shows_candidates_before_and_after_filters() -> None:
    app = start()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await type_text(pilot, PROMPT)
        await pilot.press("ctrl+r")
        await finished(pilot)
        await pilot.press("f5")
        await pilot.pause()
        steps = app.query_one("StepsView OptionList", OptionList)
        assert steps.option_count == len(app.result.steps) and app.focused is steps
        await pilot.press("down")
        await pilot.pause()
        detail = text_of(pilot, "StepsView #detail Static")
        chosen = app.state.token_text(app.result.steps[1].token_id)
        assert "step 1: chose" in detail and chosen in detail
        assert "before the filters" in detail and "after the filters" in detail


async def test_steps_grow_while_a_run_streams_and_keep_the_highlight() -> None:
    app = start()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await type_text(pilot, PROMPT)
        view = app.query_one(StepsView)
        steps = app.query_one("StepsView OptionList", OptionList)
        for strategy, detail in (("greedy", "step 2: chose"), ("beam", "step 2: every continuation")):
            app.query_one(DecodingPanel).set_strategy(strategy)
            await pilot.press("ctrl+r")
            await finished(pilot)
            result = app.result
            view.show_steps(strategy, result.steps[:3], 1)  # the records so far, as progress messages carry them
            await pilot.pause()
            assert steps.option_count == 3 and steps.highlighted == 0
            steps.highlighted = 2
            view.show_steps(strategy, result.steps[:5], 1)
            await pilot.pause()
            assert steps.option_count == 5 and steps.highlighted == 2  # appended, not rebuilt
            view.show_result(result)
            await pilot.pause()
            assert steps.option_count == len(result.steps) and steps.highlighted == 2
            assert detail in text_of(pilot, "StepsView #detail Static")


async def test_escape_cancels_mid_stream() -> None:
    app = start()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await type_text(pilot, "The")  # runs to its length limit without an end-of-text
        set_field(pilot, "max_new_tokens", "190")
        app.action_run()  # not pilot.press, which may wait until the app is idle again: the run's end
        await wait_for(pilot, lambda: "esc cancels" in text_of(pilot, "OutputView #status"))
        await pilot.press("escape")
        await finished(pilot)
        (sequence,) = app.result.sequences
        assert sequence.finish_reason == "cancelled" and len(sequence.token_ids) < 190
        assert "cancelled" in text_of(pilot, "OutputView #text")


async def test_compare_runs_the_three_strategies(session: Session) -> None:
    app = start()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await type_text(pilot, PROMPT)
        await pilot.press("ctrl+t")
        await finished(pilot)
        assert app.query_one("TabbedContent").active == "compare"
        assert set(app.compared) == {"greedy", "beam", "sample"}
        assert [r.strategy for r in app.compared.values()] == ["greedy", "beam", "sample"]
        greedy = session.generate(PROMPT).sequences[0].text
        assert text_of(pilot, "#pane-greedy #text") == PROMPT + greedy  # the prompt (dimmed), then the output
        assert app.compared["sample"].settings.seed is not None
        for lane, result in app.compared.items():  # one scale for all: the model's perplexity on the output
            prompt, output = result.prompt_token_ids, result.sequences[0].token_ids
            ids = torch.tensor([prompt + output])
            with torch.no_grad():
                logprobs = session.model(ids)[0, :-1].log_softmax(-1)  # (T - 1, vocab)
            chosen = logprobs[torch.arange(len(prompt) - 1, ids.shape[1] - 1), ids[0, len(prompt):]]
            expected = math.exp(-chosen.mean().item())
            assert f"perplexity {expected:.2f}" in str(app.query_one(f"#pane-{lane}").border_subtitle), lane


async def test_escape_cancels_a_compare() -> None:
    app = start()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await type_text(pilot, "The")
        set_field(pilot, "max_new_tokens", "190")
        app.action_compare()
        await wait_for(pilot, lambda: "step" in str(app.query_one("#pane-greedy").border_subtitle))
        await pilot.press("escape")
        await finished(pilot)
        assert app.compared["greedy"].sequences[0].finish_reason == "cancelled"
        assert "beam" not in app.compared and "sample" not in app.compared
        assert "cancelled" in text_of(pilot, "#pane-sample #text")


async def test_export_json_and_markdown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = start()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await type_text(pilot, PROMPT)
        app.query_one(DecodingPanel).set_strategy("sample")
        set_field(pilot, "seed", "7")
        await pilot.press("ctrl+r")
        await finished(pilot)
        await pilot.press("ctrl+e")
        await pilot.pause()
        (json_file,) = tmp_path.glob("lmtui-session-*.json")
        (md_file,) = tmp_path.glob("lmtui-session-*.md")
        record = json.loads(json_file.read_text())
        assert record["prompt"] == PROMPT and record["model"]["family"] == "gpt2"
        (run,) = record["runs"]
        assert run["seed"] == 7 and run["settings"]["strategy"] == "sample"
        assert run["sequences"][0]["text"] == app.result.sequences[0].text
        markdown = md_file.read_text()
        assert PROMPT in markdown and app.result.sequences[0].text in markdown
        await pilot.press("f9")
        await pilot.pause()
        assert list(tmp_path.glob("*.svg"))


async def test_copy_output() -> None:
    app = start()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await type_text(pilot, PROMPT)
        await pilot.press("ctrl+r")
        await finished(pilot)
        await pilot.press("f8")
        assert app.clipboard == app.result.sequences[0].text


MARKUP = "[bold red]not bold[/] [link=x]y[/link] [@click=app.quit]q[/]"


async def test_markup_like_text_is_shown_literally() -> None:
    app = start()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        settings = GenerationSettings()
        result = GenerateResult(MARKUP, [1], settings, [GeneratedText(MARKUP, [1], -1.0, "eos")], ())
        app.result = result
        app.query_one(CompareView).done("greedy", result, 1.5)
        await pilot.pause()
        assert text_of(pilot, "OutputView #text").startswith(MARKUP + MARKUP)
        assert MARKUP in text_of(pilot, "#pane-greedy #text")
        await type_text(pilot, MARKUP)
        await pilot.press("ctrl+r")
        await finished(pilot)
        assert text_of(pilot, "OutputView #text").startswith(MARKUP)
        assert app.is_running


async def test_palette_lists_every_action() -> None:
    app = start()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        titles = {title for title, _, _ in app.palette_commands()}
        offered_later = {"Fill masks", "Cancel"}  # with an encoder loaded; while a run goes
        assert {action.title for action in ACTIONS} - titles == offered_later
        assert {f"Show {view.title}" for view in VIEWS} <= titles
        await type_text(pilot, PROMPT)
        await pilot.press("ctrl+p")
        await pilot.press(*"compare")
        await pilot.press("enter")
        await pilot.pause(0.2)
        await finished(pilot)
        assert set(app.compared) == {"greedy", "beam", "sample"}


async def test_small_terminal_and_resizes() -> None:
    app = start()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await type_text(pilot, PROMPT)
        await pilot.press("ctrl+t")
        await finished(pilot)
        for size in ((60, 20), (120, 40), (80, 24), (40, 12)):
            await pilot.resize_terminal(*size)
            await pilot.pause()
        await pilot.press("f5", "f1", "f6", "ctrl+backslash")
        await pilot.pause()
        assert app.is_running and not app.query_one("#sidebar").display
