"""An encoder-decoder end to end: `lmtui generate` takes TEXT as the source and gives transformers' tokens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from transformers import AutoTokenizer, BartConfig, BartForConditionalGeneration, T5Config, T5ForConditionalGeneration

from conftest import CORPUS, roberta_tokenizer
from helpers_models import randomize
from lmtui.cli import main

SOURCE = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module")
def bart(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, BartForConditionalGeneration]:
    folder = tmp_path_factory.mktemp("bart")
    tokenizer = roberta_tokenizer()
    config = BartConfig(vocab_size=len(tokenizer), d_model=32, encoder_layers=2, decoder_layers=3,
                        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=48,
                        decoder_ffn_dim=48, max_position_embeddings=64, pad_token_id=1, bos_token_id=0,
                        eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=2)
    model = randomize(BartForConditionalGeneration(config), std=0.2, seed=0)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # post-LN shifts centred on 0, or greedy search repeats one token forever
        for name, parameter in model.named_parameters():
            if "norm" in name and name.endswith(".bias"):
                parameter.normal_(0.0, 0.1, generator=generator)
        model.final_logits_bias.normal_(0.0, 0.2, generator=generator)
    model.eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, model


@pytest.fixture(scope="module")
def t5(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, T5ForConditionalGeneration]:
    """A T5 v1.0 shape with a Unigram tokenizer (<pad>=0, </s>=1, <unk>=2; `$A </s>` template)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("t5")
    # A fixed vocabulary (trained Unigram vocabularies differ from run to run): whole words of the
    # corpus, then single characters as the fallback, scored so that longer pieces win.
    words = sorted({"\u2581" + word for word in CORPUS.split()})[:100]
    chars = sorted(set(CORPUS.replace(" ", "")) | {"\u2581"})
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [(w, -2.0) for w in words] + [(c, -8.0) for c in chars]
    backend = Tokenizer(models.Unigram(vocab, unk_id=2))
    backend.pre_tokenizer, backend.decoder = pre_tokenizers.Metaspace(), decoders.Metaspace()
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>", pad_token="<pad>",
                            unk_token="<unk>").save_pretrained(folder)
    config = T5Config(vocab_size=160, d_model=32, d_ff=64, num_layers=2, num_heads=4, d_kv=8,
                      feed_forward_proj="relu", decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    model = randomize(T5ForConditionalGeneration(config), std=0.3, seed=8)
    model.eval().save_pretrained(folder)
    return folder, model


def their_tokens(folder: Path, model: torch.nn.Module, **options: object) -> list[list[int]]:
    inputs = AutoTokenizer.from_pretrained(folder)(SOURCE, return_tensors="pt")
    eos = model.config.eos_token_id
    out = model.generate(**inputs, **options)[:, 1:].tolist()  # without the decoder start token
    return [row[: row.index(eos) + 1] if eos in row else row for row in out]


def generate(folder: Path, *args: str) -> dict:
    result = CliRunner().invoke(main, ["generate", SOURCE, "-m", str(folder), "--json", *args])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_greedy_equals_transformers(bart) -> None:
    folder, model = bart
    data = generate(folder, "--max-new-tokens", "10")
    expected = their_tokens(folder, model, max_new_tokens=10, do_sample=False, num_beams=1)
    assert [s["token_ids"] for s in data["sequences"]] == expected
    assert data["prompt_token_ids"] == AutoTokenizer.from_pretrained(folder)(SOURCE)["input_ids"]
    assert expected[0][-1] == 2  # forced eos on the last step, from config.json's generation defaults
    assert len(set(expected[0])) > 2  # a real sequence, not one token repeated


def test_beam_equals_transformers(bart) -> None:
    folder, model = bart
    data = generate(folder, "--strategy", "beam", "--num-beams", "3", "--num-return-sequences", "2",
                    "--max-new-tokens", "8")
    expected = their_tokens(folder, model, max_new_tokens=8, num_beams=3, num_return_sequences=2, do_sample=False)
    assert [s["token_ids"] for s in data["sequences"]] == expected


@pytest.mark.parametrize("beams", [1, 3])
def test_t5_equals_transformers(t5, beams: int) -> None:
    folder, model = t5
    data = generate(folder, "--num-beams", str(beams), "--strategy", "beam" if beams > 1 else "greedy",
                    "--max-new-tokens", "10")
    expected = their_tokens(folder, model, max_new_tokens=10, num_beams=beams, do_sample=False)
    assert [s["token_ids"] for s in data["sequences"]] == expected
    assert len(set(expected[0])) > 2


def test_info_reports_encoder_and_decoder_layers(bart) -> None:
    folder, _ = bart
    result = CliRunner().invoke(main, ["info", "-m", str(folder), "--json"])
    info = json.loads(result.stdout)
    assert (info["kind"], info["encoder_layers"], info["layers"]) == ("encoder-decoder", 2, 3)
    text = CliRunner().invoke(main, ["info", "-m", str(folder)]).stdout
    assert "2 encoder, 3 decoder" in text


def test_an_encoder_does_not_generate(tmp_path: Path) -> None:
    from transformers import BertConfig, BertForMaskedLM

    BertForMaskedLM(BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=32)).save_pretrained(tmp_path)
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"]))
    result = CliRunner().invoke(main, ["generate", "a b", "-m", str(tmp_path)])
    assert result.exit_code == 2 and "use lmtui fill-mask" in result.stderr


def test_t5_context_is_not_a_hard_limit(t5) -> None:
    """Relative positions work past n_positions (512), as transformers lets them; learned ones do not."""
    from lmtui.session import Session

    folder, model = t5
    session = Session(folder)
    source = "the quick brown fox " * 200
    ids, settings = session.settings(source, max_new_tokens=600)
    assert len(ids) > session.model.config.context_length and settings.max_new_tokens == 600
