"""Switching models in the app: another decoder, an encoder-decoder (target editor), an encoder
(fill-mask mode), and checkpoints that cannot be loaded."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from test_tui import SIZE, finished, loaded, start, text_of, type_text
from textual.pilot import Pilot
from textual.widgets import Input, OptionList, Tab, TabbedContent, TextArea

from conftest import CORPUS, roberta_tokenizer
from helpers_models import randomize
from lmtui.session import Session
from lmtui.tui.widgets.decoding import DecodingPanel
from lmtui.tui.widgets.model_bar import ModelBar
from lmtui.tui.widgets.open_model import FolderSuggester, OpenModelScreen

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
def bart_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import BartConfig, BartForConditionalGeneration

    folder = tmp_path_factory.mktemp("bart")
    tokenizer = roberta_tokenizer()
    config = BartConfig(vocab_size=len(tokenizer), d_model=32, encoder_layers=2, decoder_layers=2,
                        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=48,
                        decoder_ffn_dim=48, max_position_embeddings=64, pad_token_id=1, bos_token_id=0,
                        eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=2)
    randomize(BartForConditionalGeneration(config), std=0.2).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=200, show_progress=False,
                                        special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    backend.train_from_iterator([CORPUS], trainer)
    tokenizer = BertTokenizer(vocab=backend.get_vocab())
    folder = tmp_path_factory.mktemp("bert")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=48)
    randomize(BertForMaskedLM(config), std=0.5).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


async def open_model(pilot: Pilot, model: str) -> None:
    await pilot.press("ctrl+o")
    await pilot.pause()
    assert isinstance(pilot.app.screen, OpenModelScreen)
    field = pilot.app.screen.query_one(Input)
    field.value = model
    await pilot.press("enter")
    await pilot.pause()
    await loaded(pilot)


async def test_open_model_switches_without_restarting(gpt2_folder: Path) -> None:
    app = start()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        first = app.state.session
        await type_text(pilot, "The quick")
        await pilot.press("ctrl+t")
        await finished(pilot)
        await open_model(pilot, str(gpt2_folder) + "/")
        assert app.state.session is not first and app.info.name == str(gpt2_folder) + "/"
        assert app.info.vocab_size == 320
        assert text_of(pilot, "ModelBar #summary").startswith(f"lmtui {gpt2_folder.name}  │  gpt2")  # its own name
        assert "ctrl+t" in text_of(pilot, "#pane-greedy #text")  # the first model's compare is gone
        app.query_one("#prompt", TextArea).clear()
        await type_text(pilot, "The quick")
        await pilot.press("ctrl+r")
        await finished(pilot)
        expected = Session(gpt2_folder, device="cpu").generate("The quick").sequences[0]
        assert app.result.sequences[0].token_ids == expected.token_ids


async def test_open_dialog_lists_bundled_models_and_completes_folders(tmp_path: Path) -> None:
    (tmp_path / "models" / "alpha").mkdir(parents=True)
    suggester = FolderSuggester()
    assert await suggester.get_suggestion(f"{tmp_path}/mod") == f"{tmp_path}/models/"
    assert await suggester.get_suggestion(f"{tmp_path}/models/a") == f"{tmp_path}/models/alpha/"
    assert await suggester.get_suggestion("plain-hub-id") is None
    app = start()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("ctrl+o")
        await pilot.pause()
        choices = app.screen.query_one(OptionList)
        ids = [choices.get_option_at_index(i).id for i in range(choices.option_count)]
        assert any(id is not None and id.endswith("tiny-gpt") for id in ids)
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, OpenModelScreen) and app.state.session is not None


async def test_load_errors_are_shown_and_another_model_can_be_opened(tmp_path: Path, gpt2_folder: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(gpt2_folder, broken)
    (broken / "config.json").write_text("{not json")
    app = start(broken)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        assert app.state.session is None and app.state.error is not None
        assert "config.json" in app.state.error and "\n" not in app.state.error
        assert app.query_one(ModelBar).has_class("-failed")
        assert "cannot load" in text_of(pilot, "ModelBar #summary")
        await pilot.press("ctrl+r")  # refused with a notification, nothing runs
        await pilot.pause()
        assert app.result is None and not app.state.busy
        await open_model(pilot, str(tmp_path / "missing"))
        assert "missing" in app.state.error
        await open_model(pilot, str(gpt2_folder))
        assert app.state.error is None and app.info is not None
        assert not app.query_one(ModelBar).has_class("-failed")


async def test_a_failed_load_keeps_the_model_in_use(tmp_path: Path, gpt2_folder: Path) -> None:
    app = start(gpt2_folder)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        session, info = app.state.session, app.info
        await type_text(pilot, "Hello")
        await pilot.press("ctrl+r")
        await finished(pilot)
        result = app.result
        await open_model(pilot, str(tmp_path / "missing"))
        assert app.state.session is session and app.info is info and app.state.error is None
        assert app.state.spec.model == str(gpt2_folder) and app.result is result
        assert not app.query_one(ModelBar).has_class("-failed") and "gpt2" in text_of(pilot, "ModelBar #summary")
        await pilot.press("ctrl+r")  # still runs on the model in use
        await finished(pilot)
        assert app.result is not result and app.result.sequences[0].token_ids == result.sequences[0].token_ids


async def test_encoder_decoder_shows_the_target_editor(bart_folder: Path) -> None:
    app = start(bart_folder)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        assert app.info.kind == "encoder-decoder"
        assert app.query_one("#target", TextArea).display
        await type_text(pilot, "The quick brown fox")
        await type_text(pilot, "a lazy dog", into="#target")
        assert app.target == "a lazy dog" and app.prompt == "The quick brown fox"
        await pilot.press("ctrl+r")
        await finished(pilot)
        expected = Session(bart_folder, device="cpu").generate("The quick brown fox").sequences[0]
        assert app.result.sequences[0].token_ids == expected.token_ids
        assert text_of(pilot, "OutputView #text").startswith(expected.text)  # no source before it
    app = start()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        assert not app.query_one("#target", TextArea).display


async def test_encoder_fills_masks(bert_folder: Path) -> None:
    app = start(bert_folder)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        panel = app.query_one(DecodingPanel)
        assert app.info.kind == "encoder" and panel.mode == "fill-mask"
        assert [row.field.id for row in panel.query("Row") if row.display] == ["mask_top_k"]
        assert "[MASK]" in text_of(pilot, "OutputView #status")  # what to do with an encoder
        footer = {binding.description for _, binding, enabled, _ in app.active_bindings.values()
                  if enabled and binding.show}
        assert "Fill masks" in footer and not footer & {"Generate", "Compare", "Strategy"}
        tabs = app.query_one(TabbedContent)
        assert [tab.id for tab in tabs.query(Tab) if not tab.display] == ["--content-tab-steps",
                                                                          "--content-tab-compare"]
        await pilot.press("f5")  # no steps for an encoder: it says so and stays where it is
        await pilot.pause()
        assert tabs.active == "output"
        assert all("Compare" not in title for title, _, _ in app.palette_commands())
        await type_text(pilot, "the quick brown [MASK] jumps")
        app.query_one("#mask_top_k", Input).value = "3"
        await pilot.press("ctrl+r")
        await finished(pilot)
        (expected,) = Session(bert_folder, device="cpu").fill_mask("the quick brown [MASK] jumps", 3)
        assert app.masks is not None and app.masks[0] == expected
        shown = text_of(pilot, "OutputView #text")
        assert f"mask at token {expected.position}" in shown and expected.candidates[0].text in shown
        await pilot.press("ctrl+t")  # nothing to compare for an encoder
        await pilot.pause()
        assert not app.state.busy
        app.query_one("#prompt", TextArea).clear()
        await type_text(pilot, "no mask here")
        await pilot.press("ctrl+r")
        await finished(pilot)
        assert "no mask token" in text_of(pilot, "OutputView #status")
