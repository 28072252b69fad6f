"""`lmtui attention` end to end: the JSON contract, equal to transformers on real tokenizers, the text
rendering, encoder-decoder kinds with --target, the last generation, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner, Result
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    BartConfig,
    BartForConditionalGeneration,
)

from conftest import roberta_tokenizer
from helpers_loss import save_marian
from helpers_models import randomize
from lmtui.checkpoint import DEFAULT_MODEL
from lmtui.cli import main
from lmtui.session import Session

TEXT = "The with statement is used to wrap the execution of a block."
SOURCE = "The quick brown fox jumps over the lazy dog."
TARGET = "A lazy dog."


def invoke(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, ["attention", *args], input=stdin)


def json_of(result: Result) -> dict:
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def bart_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bart")
    tokenizer = roberta_tokenizer()
    config = BartConfig(vocab_size=len(tokenizer), d_model=32, encoder_layers=2, decoder_layers=3,
                        encoder_attention_heads=4, decoder_attention_heads=2, encoder_ffn_dim=48,
                        decoder_ffn_dim=48, max_position_embeddings=64, pad_token_id=1, bos_token_id=0,
                        eos_token_id=2, decoder_start_token_id=2)
    randomize(BartForConditionalGeneration(config), std=0.2).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_json_contract_equals_transformers_on_the_bundled_model() -> None:
    data = json_of(invoke(TEXT, "--layer", "-1", "--head", "2", "--json"))
    assert set(data) >= {"layer", "head", "kind", "queries", "keys", "weights", "masked"}
    assert (data["layer"], data["head"], data["kind"]) == (3, 2, "self")
    tokenizer = AutoTokenizer.from_pretrained(DEFAULT_MODEL)
    ids = tokenizer(TEXT)["input_ids"]
    assert data["queries"] == data["keys"] == tokenizer.convert_ids_to_tokens(ids)
    model = AutoModelForCausalLM.from_pretrained(DEFAULT_MODEL, attn_implementation="eager").eval()
    with torch.no_grad():
        expected = model(torch.tensor([ids]), output_attentions=True).attentions[3][0, 2]
    assert (torch.tensor(data["weights"]) - expected).abs().max() < 1e-5
    assert data["masked"] == torch.ones(len(ids), len(ids), dtype=torch.bool).triu(1).tolist()
    for row in data["weights"]:
        assert sum(row) == pytest.approx(1.0, abs=1e-5)


def test_text_rendering_marks_masked_cells_and_reads_stdin() -> None:
    result = invoke("--head", "1", stdin="The with statement")
    assert result.exit_code == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.startswith("self attention, layer 0, head 1: 3 queries x 3 keys")
    assert rows[0].split("|")[1] == rows[0].split("|")[1][0] + "··"  # the first query sees only itself
    assert "·" not in rows[2].split("|")[1]  # the last sees everything


def test_summary_lists_every_layer_and_head() -> None:
    data = json_of(invoke(TEXT, "--summary", "--json"))
    info = Session().info()
    assert (data["layers"], data["heads"]) == (info.layers, info.heads)
    assert len(data["summaries"]) == info.layers * info.heads
    assert set(data["summaries"][0]) == {"layer", "head", "entropy", "first", "previous", "itself"}
    text = invoke(TEXT, "--summary")
    assert text.exit_code == 0 and len(text.stdout.splitlines()) == 2 + info.layers * info.heads


@torch.no_grad()
def test_encoder_decoder_kinds_with_a_target(bart_folder: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(bart_folder)
    source, target = tokenizer(SOURCE)["input_ids"], tokenizer(text_target=TARGET)["input_ids"]
    decoder_input = [2, *target[:-1]]
    model = AutoModelForSeq2SeqLM.from_pretrained(bart_folder, attn_implementation="eager").eval()
    out = model(input_ids=torch.tensor([source]), decoder_input_ids=torch.tensor([decoder_input]),
                output_attentions=True)
    expected = {"encoder": out.encoder_attentions, "decoder": out.decoder_attentions, "cross": out.cross_attentions}
    for kind, maps in expected.items():
        data = json_of(invoke(SOURCE, "-m", str(bart_folder), "--target", TARGET, "--kind", kind,
                              "--layer", "1", "--head", "1", "--json"))
        assert data["kind"] == kind
        assert (torch.tensor(data["weights"]) - maps[1][0, 1]).abs().max() < 1e-5
    cross = json_of(invoke(SOURCE, "-m", str(bart_folder), "--target", TARGET, "--json"))
    assert cross["kind"] == "cross"  # the default once a target is given
    assert cross["queries"] == tokenizer.convert_ids_to_tokens(decoder_input)
    assert cross["keys"] == tokenizer.convert_ids_to_tokens(source)
    assert json_of(invoke(SOURCE, "-m", str(bart_folder), "--json"))["kind"] == "encoder"


def test_the_last_generation_is_inspected_as_it_was_produced() -> None:
    session = Session()
    result = session.generate("The with statement", max_new_tokens=6)
    view = session.attention(session.last_inputs())
    ids = result.prompt_token_ids + result.sequences[0].token_ids
    head_map = view.map("self", 0, 0)
    assert head_map.queries == [session.tokenizer.id_to_piece(i) for i in ids]
    assert len(head_map.weights) == len(ids)


@pytest.mark.parametrize(("args", "message"), [
    (["--kind", "cross"], "no 'cross' attention"),
    (["--layer", "4"], "4 is not a valid layer"),
    (["--head", "-7"], "-7 is not a valid head"),
    (["--target", "x"], "a target is read only by encoder-decoders"),
])
def test_bad_options_are_one_line_usage_errors(args: list[str], message: str) -> None:
    result = invoke(TEXT, *args)
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_text_past_the_context_is_refused_before_running() -> None:
    result = invoke("word " * 400)
    assert result.exit_code == 2
    assert "this model reads at most 256" in result.stderr


def test_pad_to_shows_the_padding_mask() -> None:
    data = json_of(invoke("The with statement", "--pad-to", "5", "--json"))
    assert data["queries"][:2] == ["<|endoftext|>"] * 2  # GPT-2 has no pad token: eos, on the left
    assert data["masked"][0] == data["masked"][1] == [True] * 5
    assert all(row[:2] == [True, True] for row in data["masked"])
    assert data["weights"][2] == [0.0, 0.0, 1.0, 0.0, 0.0]


def test_marian_with_separate_vocabularies_names_each_side_from_its_own(tmp_path: Path) -> None:
    """Source pieces come from vocab.json, target pieces from target_vocab.json."""
    from transformers import MarianTokenizer

    folder = tmp_path / "marian"
    (tmp_path / "spm").mkdir()
    save_marian(folder, tmp_path / "spm")
    session = Session(folder)
    source, target = "the house is small", "das Haus ist klein"
    cross = session.attention(source, target).map("cross", 0, 0)
    theirs = MarianTokenizer.from_pretrained(folder)
    source_ids = theirs(source)["input_ids"]  # (its convert_ids_to_tokens reads the target vocabulary for both)
    source_pieces = {i: p for p, i in json.loads((folder / "vocab.json").read_text()).items()}
    assert cross.keys == [source_pieces[i] for i in source_ids]
    target_pieces = {i: p for p, i in json.loads((folder / "target_vocab.json").read_text()).items()}
    target_ids = theirs(text_target=target)["input_ids"]
    assert cross.queries[1:] == [target_pieces[i] for i in target_ids[:-1]]
    assert cross.keys != [target_pieces.get(i) for i in source_ids]  # the two vocabularies differ here
