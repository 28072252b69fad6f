"""The Tokens, Attention and Loss views driven with Pilot, checked against the session's own answers:
weights/tiny-gpt (a decoder), weights/tiny-seq2seq (a BART that writes number words as digits, whose
cross-attention lines each digit up with its word) and a test-built BERT (an encoder)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_tui import SIZE, finished, loaded, start, text_of, type_text, wait_for
from test_tui_models import bert_folder  # noqa: F401  (a fixture)
from textual.pilot import Pilot
from textual.widgets import Input, TextArea
from textual.worker import WorkerState

from lmtui.checkpoint import DEFAULT_MODEL
from lmtui.inspect.tokens import split_text, trace_word
from lmtui.session import Session
from lmtui.tui.views.attention import AttentionView
from lmtui.tui.views.inspecting import Follow
from lmtui.tui.views.loss import LossView
from lmtui.tui.views.tokens import TokensView
from lmtui.tui.widgets.heatmap import Heatmap
from lmtui.tui.widgets.token_strip import TokenStrip

SEQ2SEQ = DEFAULT_MODEL.parent / "tiny-seq2seq"
TEXT = "The with statement is used to wrap a block."
SOURCE, TARGET = "three hundred and forty-two", "342"

pytestmark = [pytest.mark.asyncio,
              pytest.mark.skipif(not DEFAULT_MODEL.is_dir() or not SEQ2SEQ.is_dir(), reason="bundled weights missing")]


@pytest.fixture(scope="module")
def gpt() -> Session:
    return Session(device="cpu")


@pytest.fixture(scope="module")
def seq2seq() -> Session:
    return Session(SEQ2SEQ, device="cpu")


def _busy(pilot: Pilot) -> bool:
    follows: list[Follow] = [view.follow for view in pilot.app.query("TokensView, AttentionView, LossView")]
    working = any(worker.state in (WorkerState.PENDING, WorkerState.RUNNING) for worker in pilot.app.workers)
    return working or any(follow.waiting for follow in follows)


async def settled(pilot: Pilot) -> None:
    """Until the views have read the latest text and every worker's answer has been drawn."""
    await wait_for(pilot, lambda: not _busy(pilot))
    for _ in range(3):  # an answer may start the next worker (the model's run, then a head's map)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        await wait_for(pilot, lambda: not _busy(pilot))


async def enter(pilot: Pilot, text: str, into: str = "#prompt") -> None:
    """Put text into an editor at once (a paste), as typing it key by key would."""
    editor = pilot.app.query_one(into, TextArea)
    editor.focus()
    editor.insert(text)
    await pilot.pause()


async def show(pilot: Pilot, key: str) -> None:
    await pilot.press(key)
    await settled(pilot)


def cell_text(pilot: Pilot) -> str:
    return text_of(pilot, "AttentionView #cell")


def map_grid(pilot: Pilot) -> Heatmap:
    return pilot.app.query_one("#map", Heatmap)


# -- Tokens


async def test_tokens_view_shows_the_split_and_the_merges_of_the_selected_token(gpt: Session) -> None:
    app = start()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await type_text(pilot, TEXT)
        await show(pilot, "f2")
        view = app.query_one(TokensView)
        assert app.focused is view
        split = split_text(gpt.tokenizer, TEXT)
        strip = view.query_one(TokenStrip)
        assert strip.count == len(split.tokens) and strip.selected == 0
        assert f"{len(split.tokens)} tokens" in text_of(pilot, "TokensView #status")
        await pilot.press("right", "right")
        await settled(pilot)
        token = split.tokens[2]
        word = split.words[token.word]
        merges = trace_word(gpt.tokenizer, word.text).merges_for(word.tokens.index(2))
        detail = text_of(pilot, "TokensView #text")
        assert token.display in detail and str(token.id) in detail
        assert " ".join(f"{b:02x}" for b in token.bytes) in detail and f"{token.start}:{token.end}" in detail
        assert f"How BPE built it: {len(merges)} merges" in detail
        assert all(f"rank {merge.rank}" in detail for merge in merges)
        await pilot.press("i")
        assert str(token.id).translate(str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")) in strip.render_line(0).text


async def test_tokens_view_selects_with_the_mouse_and_shows_text_literally(gpt: Session) -> None:
    text = "[bold]x[/] a\n\tb"
    app = start()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await enter(pilot, text)
        await show(pilot, "f2")
        strip = app.query_one("TokensView TokenStrip", TokenStrip)
        first_line = strip.render_line(0).text
        assert first_line.startswith("[bold]x[/]␣a↵")  # no markup, whitespace visible, a new line after ↵
        assert strip.render_line(1).text.startswith("⇥")
        split = split_text(gpt.tokenizer, text)
        await pilot.click("TokensView TokenStrip", offset=(len("[bold]x[/]␣"), 0))
        await settled(pilot)
        selected = split.tokens[strip.selected]
        assert selected.display.strip("␣") == "a"
        assert "“␣a”" in text_of(pilot, "TokensView #text") or "“a”" in text_of(pilot, "TokensView #text")
        await pilot.press("down")
        assert split.tokens[strip.selected].display == "b"  # the nearest token on the line below


async def test_tokens_view_shows_source_and_target_and_wordpiece_steps(bert_folder: Path) -> None:  # noqa: F811
    app = start(SEQ2SEQ)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await enter(pilot, SOURCE)
        await enter(pilot, TARGET, into="#target")
        await show(pilot, "f2")
        strip = app.query_one("TokensView TokenStrip", TokenStrip)
        assert strip.render_line(0).text.startswith("source")
        status = text_of(pilot, "TokensView #status")
        assert "source 8 tokens" in status and "target 5 tokens" in status
        await pilot.press("end")
        assert "in the target" in text_of(pilot, "TokensView #text")
    app = start(bert_folder)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await enter(pilot, "the quickest fox")
        await show(pilot, "f2")
        session = app.state.session
        split = split_text(session.tokenizer, "the quickest fox")
        index = next(t.index for t in split.tokens if t.display.startswith("##"))  # a word's second piece
        await pilot.press(*["right"] * index)
        await settled(pilot)
        detail = text_of(pilot, "TokensView #text")
        assert "How WordPiece built it" in detail and split.tokens[index].display in detail


# -- Attention


async def test_attention_view_reads_out_the_sessions_weights(gpt: Session) -> None:
    app = start()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await type_text(pilot, TEXT)
        await show(pilot, "f3")
        view = app.query_one(AttentionView)
        assert app.focused is view
        expected = gpt.attention(TEXT)
        assert text_of(pilot, "AttentionView #status").startswith("self  layer 0 of 4")
        await pilot.press("right_square_bracket", "right_square_bracket", "full_stop")  # layer 2, head 1
        await pilot.press("down", "down", "down", "down", "right")
        await settled(pilot)
        assert (view.layer_index, view.head_index) == (2, 1)
        status = text_of(pilot, "AttentionView #status")
        assert "layer 2 of 4" in status and "head 1 of 6" in status
        head = expected.map("self", 2, 1)
        assert f"query 4 “{map_grid(pilot).row_labels[4]}”" in cell_text(pilot)
        assert cell_text(pilot).startswith(f"{head.weights[4][1]:.4f}  query 4")  # the weight first
        assert map_grid(pilot).values[4] == pytest.approx([None if m else w for w, m in zip(head.weights[4],
                                                                                            head.masked[4])])
        await pilot.press("right", "right", "right", "right")  # past the diagonal: a later token
        assert "masked: a later token" in cell_text(pilot)
        await pilot.press("left_square_bracket", "comma", "comma", "left", "left")  # layer 1, head 5 (wraps around)
        await settled(pilot)
        assert (view.layer_index, view.head_index) == (1, 5) and map_grid(pilot).cursor == (4, 3)
        assert f"{expected.map('self', 1, 5).weights[4][3]:.4f}" in cell_text(pilot)


async def test_cross_attention_lines_digits_up_with_words(seq2seq: Session) -> None:
    app = start(SEQ2SEQ)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await enter(pilot, SOURCE)
        await show(pilot, "f3")
        view = app.query_one(AttentionView)
        assert view.kind == "encoder" and "a target adds decoder and cross" in text_of(pilot, "AttentionView #status")
        await enter(pilot, TARGET, into="#target")  # typed while the view is shown: it follows, after a pause
        await settled(pilot)
        expected = seq2seq.attention(SOURCE, TARGET)
        assert view.kind == "cross"
        view.focus()
        for layer, head in ((0, 0), (2, 0), (2, 3)):
            for _ in range(8):
                if (view.layer_index, view.head_index) == (layer, head):
                    break
                await pilot.press("right_square_bracket" if view.layer_index != layer else "full_stop")
            await settled(pilot)
            head_map = expected.map("cross", layer, head)
            grid = map_grid(pilot)
            assert grid.row_labels == ["</s>", "<s>", "3", "4", "2"] and grid.column_labels[1] == "three"
            for row, weights in enumerate(head_map.weights):
                shown = grid.values[row]
                assert shown.index(max(v for v in shown if v is not None)) == weights.index(max(weights))
        assert map_grid(pilot).cursor == (0, 0)
        await pilot.press("down", "right")
        assert "query 1 “<s>” (→ “3”)  key 1 “three”" in cell_text(pilot)  # the row that writes 3
        kinds = []
        for _ in range(3):
            await pilot.press("k")
            await settled(pilot)
            kinds.append(view.kind)
        assert kinds == ["encoder", "decoder", "cross"]


async def test_overview_of_every_head_jumps_to_the_chosen_one(gpt: Session) -> None:
    app = start()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await type_text(pilot, TEXT)
        await show(pilot, "f3")
        await show(pilot, "o")
        view = app.query_one(AttentionView)
        heads = app.query_one("#heads", Heatmap)
        assert heads.display and not map_grid(pilot).display
        summaries = gpt.attention(TEXT).summaries("self")
        assert len(heads.row_labels) == 4 and len(heads.column_labels) == 6
        assert heads.texts[3][2] == f"{summaries[3 * 6 + 2].entropy:.2f}"
        await pilot.press("s")  # the weight on the first token
        assert heads.texts[3][2] == f"{summaries[3 * 6 + 2].first:.2f}"
        await pilot.press("down", "down", "down", "right", "right")
        assert "layer 3 head 2" in cell_text(pilot)
        await pilot.press("enter")
        await settled(pilot)
        assert (view.layer_index, view.head_index) == (3, 2) and map_grid(pilot).display
        await show(pilot, "o")
        await pilot.click("#heads", offset=(heads.geometry().label + 1, heads.geometry().header + 1))  # layer 1, head 0
        await settled(pilot)
        assert (view.layer_index, view.head_index) == (1, 0) and map_grid(pilot).display


async def test_long_texts_scroll_and_fetch_the_rows_in_view(gpt: Session) -> None:
    text = " ".join(["the with statement wraps a block of code"] * 20)
    app = start()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await enter(pilot, text)
        await show(pilot, "f3")
        grid = map_grid(pilot)
        rows = len(grid.row_labels)
        assert rows > 150 and grid.window()[1] - grid.window()[0] < 20 and len(grid.values) < rows  # a window
        await pilot.press("end")
        await settled(pilot)
        assert grid.cursor == (rows - 1, rows - 1) and grid.top > 0
        weights = gpt.attention(text).map("self", 0, 0, rows=(rows - 1, rows))
        assert f"{weights.weights[0][rows - 1]:.4f}" in cell_text(pilot)
        await pilot.press("pageup")
        await settled(pilot)
        assert all(row in grid.values for row in range(*grid.window()))


async def test_attention_and_loss_of_the_last_generation(gpt: Session) -> None:
    app = start()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await type_text(pilot, "Return the")
        await pilot.press("ctrl+r")
        await finished(pilot)
        gpt.generate("Return the")
        inputs = gpt.last_inputs()
        await show(pilot, "f3")
        await show(pilot, "g")
        assert "last generation" in text_of(pilot, "AttentionView #status")
        assert len(map_grid(pilot).row_labels) == len(inputs.ids)
        await show(pilot, "f4")
        await show(pilot, "g")
        expected = gpt.loss(inputs)
        assert f"mean loss {expected.mean_loss:.4f}" in text_of(pilot, "LossView #status")
        assert "the last generation" in text_of(pilot, "LossView #status")


async def test_padding_is_masked_and_said_so() -> None:
    app = start()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await type_text(pilot, "Return the")
        await show(pilot, "f3")
        await show(pilot, "p")
        grid = map_grid(pilot)
        assert "+ 3 padding" in text_of(pilot, "AttentionView #status") and len(grid.row_labels) == 5
        await pilot.press("end", "left", "left", "left", "left")  # the last query, the first (padding) key
        assert "masked: padding" in cell_text(pilot)
        assert all(grid.values[row][0] is None for row in range(5))


async def test_attention_mouse_moves_the_cursor() -> None:
    app = start()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await type_text(pilot, TEXT)
        await show(pilot, "f3")
        grid = map_grid(pilot)
        shape = grid.geometry()
        await pilot.hover(Heatmap, offset=(shape.label + 1 + 2 * shape.cell, shape.header + 3 * shape.height))
        await pilot.pause()
        assert grid.cursor == (3, 2) and "query 3" in cell_text(pilot)
        await pilot.click(Heatmap, offset=(shape.label + 1, shape.header))
        await pilot.pause()
        assert grid.cursor == (0, 0)


# -- Loss


async def epsilon(pilot: Pilot, value: str) -> None:
    pilot.app.query_one("#epsilon", Input).value = value
    await settled(pilot)


async def test_loss_view_follows_epsilon(gpt: Session) -> None:
    app = start()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await type_text(pilot, TEXT)
        await show(pilot, "f4")
        assert f"mean loss {gpt.loss(TEXT).mean_loss:.4f}" in text_of(pilot, "LossView #status")
        await epsilon(pilot, "0.1")
        smoothed = gpt.loss(TEXT, label_smoothing=0.1)
        status = text_of(pilot, "LossView #status")
        assert f"mean loss {smoothed.mean_loss:.4f}" in status and f"perplexity {smoothed.perplexity:.2f}" in status
        strip = app.query_one("LossView TokenStrip", TokenStrip)
        assert strip.selected == 1  # the first scored token: the first has no prefix
        await pilot.press("right")
        token = smoothed.tokens[1]
        detail = text_of(pilot, "LossView #text")
        assert f"loss {token.loss:.4f}" in detail and f"rank {token.rank}" in detail
        assert all(f"{alternative.prob * 100:5.1f}%" in detail for alternative in token.alternatives)
        assert " 90.0%" in detail and f"{smoothed.smoothed_target(1).others} others" in detail  # q = 1 - ε + ε/V
        await pilot.press("plus")
        await settled(pilot)
        assert app.query_one("#epsilon", Input).value == "0.15"
        assert f"mean loss {gpt.loss(TEXT, label_smoothing=0.15).mean_loss:.4f}" in text_of(pilot, "LossView #status")
        await epsilon(pilot, "1.5")
        assert text_of(pilot, "LossView #status") == "label smoothing must be in [0, 1), not 1.5"
        await epsilon(pilot, "lots")
        assert "must be a number" in text_of(pilot, "LossView #status")
        assert app.query_one("#epsilon", Input).has_class("-invalid")


async def test_loss_errors_are_one_line_in_the_view() -> None:
    app = start()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await type_text(pilot, "The")
        await show(pilot, "f4")
        status = app.query_one("LossView #status")
        assert "needs at least two" in text_of(pilot, "LossView #status") and status.has_class("-error")
        await show(pilot, "g")
        assert "Nothing generated yet" in text_of(pilot, "LossView #status")
        assert app.is_running


async def test_loss_of_a_target_and_of_an_encoder(seq2seq: Session, bert_folder: Path) -> None:  # noqa: F811
    app = start(SEQ2SEQ)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await enter(pilot, SOURCE)
        await show(pilot, "f4")
        assert "No target yet: type one under the source" in text_of(pilot, "LossView #status")
        await enter(pilot, TARGET, into="#target")
        await settled(pilot)
        expected = seq2seq.loss(SOURCE, TARGET)
        assert f"mean loss {expected.mean_loss:.4f}" in text_of(pilot, "LossView #status")
        assert app.query_one("LossView TokenStrip", TokenStrip).count == len(expected.tokens)
        await pilot.press("ctrl+r")  # the output, scored as the decoder produced it
        await finished(pilot)
        seq2seq.generate(SOURCE)
        generated = seq2seq.last_inputs()
        await show(pilot, "f4")
        await show(pilot, "g")
        assert f"mean loss {seq2seq.loss(generated).mean_loss:.4f}" in text_of(pilot, "LossView #status")
        await show(pilot, "f3")
        await show(pilot, "g")
        view = app.query_one(AttentionView)
        assert view.kind == "cross" and len(map_grid(pilot).row_labels) == len(generated.target_ids)
    app = start(bert_folder)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await enter(pilot, "the quick brown fox")
        await show(pilot, "f4")
        expected = Session(bert_folder, device="cpu").loss("the quick brown fox")
        assert f"mean loss {expected.mean_loss:.4f}" in text_of(pilot, "LossView #status")
        assert "pseudo-log-likelihood" in text_of(pilot, "LossView #status")
        await show(pilot, "f3")
        assert text_of(pilot, "AttentionView #status").startswith("self  layer 0")
        shown = {binding.description for _, binding, enabled, _ in app.active_bindings.values() if binding.show}
        assert "Layer" in shown and "Prompt/output" not in shown  # an encoder has no generation to switch to


async def test_views_at_80x24_and_resizing() -> None:
    app = start()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await enter(pilot, TEXT + "\n[red]not red[/red]")
        for key in ("f2", "f3", "f4"):
            await show(pilot, key)
            for size in ((60, 20), (120, 40), (40, 12), (80, 24)):
                await pilot.resize_terminal(*size)
                await pilot.pause()
        await show(pilot, "f3")
        grid = map_grid(pilot)
        assert "[red]" in "".join(grid.row_labels) and grid.geometry().rows >= 8
        assert app.query_one(LossView) and app.is_running


async def test_unigram_detail_shows_the_best_split_and_the_runner_up() -> None:
    """The Tokens view's detail for a Unigram model (T5, Marian), from an in-memory tokenizer."""
    from tokenizers import Tokenizer as Backend
    from tokenizers import models, pre_tokenizers

    from lmtui.tokenizer import SpecialTokens, Tokenizer
    from lmtui.tui.views.traces import token_detail

    vocab = [("<unk>", 0.0), ("▁", -2.0), ("▁c", -4.0), ("a", -3.0), ("t", -3.0), ("at", -3.5), ("▁cat", -9.5)]
    backend = Backend(models.Unigram(vocab, unk_id=0))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer = Tokenizer(backend, SpecialTokens())
    split = split_text(tokenizer, "cat")
    trace = trace_word(tokenizer, split.words[0].text)
    assert trace.pieces == ("▁c", "at") and trace.runner_up is not None
    detail = str(token_detail(split, split.tokens[1], "", trace))
    assert "How Unigram chose it" in detail and "runner-up" in detail
    assert f"= {trace.best.score:.3f}" in detail and f"({trace.best.score - trace.runner_up.score:.3f} lower)" in detail
    assert "␣c" in detail and "at" in detail
