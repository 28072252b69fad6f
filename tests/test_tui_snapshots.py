"""Snapshots of the app's main screens at 100x30 (and 80x24), on the bundled weights/tiny-gpt.

Deterministic: the model is loaded on the CPU before the picture is taken, the prompt is fixed and
decoding is greedy or beam search (the compare's sampling has a typed seed); the inspection views
(tokens, attention, loss; weights/tiny-seq2seq for cross-attention) are drawn once their workers end. Update them with
`pytest tests/test_tui_snapshots.py --snapshot-update` and look at the report before accepting.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from test_tui import PROMPT, SIZE, finished, loaded, set_field, start, type_text
from test_tui_views import SEQ2SEQ, enter, settled
from textual.pilot import Pilot
from textual.widgets import Input, TextArea

from lmtui.checkpoint import DEFAULT_MODEL
from lmtui.tui.widgets.decoding import DecodingPanel

pytestmark = pytest.mark.skipif(not DEFAULT_MODEL.is_dir(), reason="the bundled weights/tiny-gpt is not there")

Compare = Callable[..., bool]
RunBefore = Callable[[Pilot], Awaitable[None]]


async def ready(pilot: Pilot) -> None:
    """The model loaded, and the cursor steady: a blinking one would differ between two pictures."""
    for editor in pilot.app.query(TextArea):
        editor.cursor_blink = False
    await loaded(pilot)


def generated(strategy: str = "greedy", then: tuple[str, ...] = (), **fields: str) -> RunBefore:
    """Load, type the prompt, generate with this strategy and these typed fields, then press `then`."""
    async def run_before(pilot: Pilot) -> None:
        await ready(pilot)
        await type_text(pilot, PROMPT)
        pilot.app.query_one(DecodingPanel).set_strategy(strategy)
        for name, value in fields.items():
            set_field(pilot, name, value)
        await pilot.press("ctrl+r")
        await finished(pilot)
        await pilot.press(*then)
        await pilot.pause()

    return run_before


def test_greedy_output(snap_compare: Compare) -> None:
    assert snap_compare(start(), terminal_size=SIZE, run_before=generated())


def test_greedy_steps(snap_compare: Compare) -> None:
    assert snap_compare(start(), terminal_size=SIZE, run_before=generated(then=("f5", "down")))


def test_beam_output(snap_compare: Compare) -> None:
    assert snap_compare(start(), terminal_size=SIZE, run_before=generated("beam", num_beams="3",
                                                                          num_return_sequences="2"))


def test_beam_steps(snap_compare: Compare) -> None:
    assert snap_compare(start(), terminal_size=SIZE, run_before=generated("beam", then=("f5", "down", "down"),
                                                                          num_beams="3"))


def test_compare(snap_compare: Compare) -> None:
    async def run_before(pilot: Pilot) -> None:
        await ready(pilot)
        await type_text(pilot, PROMPT)
        set_field(pilot, "seed", "0")
        await pilot.press("ctrl+t")
        await finished(pilot)

    assert snap_compare(start(), terminal_size=SIZE, run_before=run_before)


def test_invalid_sampling_value(snap_compare: Compare) -> None:
    async def run_before(pilot: Pilot) -> None:
        await ready(pilot)
        pilot.app.query_one(DecodingPanel).set_strategy("sample")
        set_field(pilot, "top_p", "2")
        await pilot.pause()

    assert snap_compare(start(), terminal_size=SIZE, run_before=run_before)


def test_load_error(snap_compare: Compare) -> None:
    assert snap_compare(start("no-such/model"), terminal_size=SIZE, run_before=ready)


def test_small_terminal(snap_compare: Compare) -> None:
    assert snap_compare(start(), terminal_size=(80, 24), run_before=generated())


VIEW_TEXT = "The with statement is used to wrap the execution of a block."


def inspected(*keys: str, prompt: str = VIEW_TEXT, target: str | None = None, epsilon: str | None = None
              ) -> RunBefore:
    """Load, type the prompt (and target), open an inspection view and press `keys`, each drawn before the next."""
    async def run_before(pilot: Pilot) -> None:
        await ready(pilot)
        await enter(pilot, prompt)
        if target is not None:
            await enter(pilot, target, into="#target")
        if epsilon is not None:
            pilot.app.query_one("#epsilon", Input).value = epsilon
        for key in keys:
            await pilot.press(key)
            await settled(pilot)

    return run_before


def test_tokens_view(snap_compare: Compare) -> None:
    assert snap_compare(start(), terminal_size=SIZE, run_before=inspected("f2", "right", "right"))


def test_attention_view(snap_compare: Compare) -> None:
    keys = ("f3", "right_square_bracket", "down", "down", "down", "down", "down", "right", "right")
    assert snap_compare(start(), terminal_size=SIZE, run_before=inspected(*keys))


def test_attention_overview(snap_compare: Compare) -> None:
    assert snap_compare(start(), terminal_size=SIZE, run_before=inspected("f3", "o", "down", "right"))


def test_cross_attention(snap_compare: Compare) -> None:
    run_before = inspected("f3", "right_square_bracket", "right_square_bracket", "down", "down",
                           prompt="three hundred and forty-two", target="342")
    assert snap_compare(start(SEQ2SEQ), terminal_size=SIZE, run_before=run_before)


def test_loss_view(snap_compare: Compare) -> None:
    assert snap_compare(start(), terminal_size=SIZE, run_before=inspected("f4", "right", epsilon="0.1"))


def test_inspection_views_small_terminal(snap_compare: Compare) -> None:
    assert snap_compare(start(), terminal_size=(80, 24), run_before=inspected("f3", "down", "down"))
