"""Attention maps recomputed from recorded queries and keys equal transformers' `output_attentions`
(eager attention) for every family and kind, masks included, and head summaries follow from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from transformers import (
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSeq2SeqLM,
    BartConfig,
    BartForConditionalGeneration,
    BertConfig,
    BertForMaskedLM,
    DistilBertConfig,
    DistilBertForMaskedLM,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    MarianConfig,
    MarianMTModel,
    MistralConfig,
    MistralForCausalLM,
    RobertaConfig,
    RobertaForMaskedLM,
    T5Config,
    T5ForConditionalGeneration,
)

from helpers_models import load_ours, randomize, token_ids
from lmtui.errors import InvalidOption
from lmtui.inspect.attention import AttentionView, record
from lmtui.inspect.inputs import TokenInputs

VOCAB = 96
TOL = 1e-5
LENGTH = 11
TARGET = 7
DECODERS: dict[str, nn.Module] = {
    "gpt2": GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64)),
    "gpt2-inverse-layer-scale": GPT2LMHeadModel(GPT2Config(
        vocab_size=VOCAB, n_embd=32, n_layer=3, n_head=2, n_positions=64, scale_attn_by_inverse_layer_idx=True)),
    "llama-gqa": LlamaForCausalLM(LlamaConfig(
        vocab_size=VOCAB, hidden_size=48, intermediate_size=64, num_hidden_layers=2, num_attention_heads=6,
        num_key_value_heads=2, max_position_embeddings=64)),
    "mistral-window-4": MistralForCausalLM(MistralConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, sliding_window=4)),
}
ENCODER_SIZES = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=48, max_position_embeddings=40)
ENCODERS: dict[str, nn.Module] = {
    "bert": BertForMaskedLM(BertConfig(**ENCODER_SIZES)),
    "roberta": RobertaForMaskedLM(RobertaConfig(**ENCODER_SIZES)),
    "distilbert": DistilBertForMaskedLM(DistilBertConfig(vocab_size=VOCAB, dim=32, n_layers=2, n_heads=4,
                                                         hidden_dim=48, max_position_embeddings=40)),
}
SEQ2SEQ_SIZES = dict(vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=3, encoder_attention_heads=4,
                     decoder_attention_heads=2, encoder_ffn_dim=48, decoder_ffn_dim=40, max_position_embeddings=64)
SEQ2SEQ: dict[str, nn.Module] = {
    "bart": BartForConditionalGeneration(BartConfig(**SEQ2SEQ_SIZES, decoder_start_token_id=2)),
    "marian": MarianMTModel(MarianConfig(**SEQ2SEQ_SIZES, pad_token_id=3, eos_token_id=0,
                                         decoder_start_token_id=3)),
    "t5": T5ForConditionalGeneration(T5Config(
        vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=3, num_heads=4,
        relative_attention_num_buckets=8, relative_attention_max_distance=6, decoder_start_token_id=0)),
}
AUTO = {"decoder": AutoModelForCausalLM, "encoder": AutoModelForMaskedLM, "encoder-decoder": AutoModelForSeq2SeqLM}


def pair(model: nn.Module, kind: str, folder: Path) -> tuple[nn.Module, nn.Module]:
    """Ours and transformers' (eager attention, which can return probabilities) on one random checkpoint."""
    randomize(model, std=0.3).save_pretrained(folder)
    theirs = AUTO[kind].from_pretrained(folder, attn_implementation="eager").eval()
    return load_ours(folder), theirs


def view_of(ours: nn.Module, kind: str, inputs: TokenInputs, start: int | None = None) -> AttentionView:
    return record(ours, kind, inputs, start, str, str)


def assert_maps_equal(view: AttentionView, kind: str, expected: tuple[Tensor, ...], causal: bool,
                      window: int | None = None) -> None:
    """Every head of every layer equals transformers' probabilities; masked cells are exactly the
    future (and keys beyond a sliding window)."""
    assert view.layers(kind) == len(expected)
    for layer, theirs in enumerate(expected):
        assert view.heads(kind) == theirs.shape[1]
        for head in range(theirs.shape[1]):
            got = view.map(kind, layer, head)
            weights = torch.tensor(got.weights)
            diff = (weights - theirs[0, head]).abs().max().item()
            assert diff < TOL, f"{kind} layer {layer} head {head}: max diff {diff:.3g}"
            masked = torch.tensor(got.masked)
            T, S = weights.shape
            every = torch.ones(T, S, dtype=torch.bool)
            hidden = every.triu(S - T + 1) if causal else ~every
            if window is not None:
                hidden |= every.tril(S - T - window)
            assert torch.equal(masked, hidden)
            assert torch.all(weights[masked] == 0)
            assert torch.allclose(weights.sum(-1), torch.ones(T), atol=1e-5)


@pytest.mark.parametrize("name", list(DECODERS))
@torch.no_grad()
def test_decoder_self_attention_equals_transformers(name: str, tmp_path: Path) -> None:
    ours, theirs = pair(DECODERS[name], "decoder", tmp_path)
    ids = token_ids(1, LENGTH, VOCAB, seed=3)
    expected = theirs(ids, output_attentions=True).attentions
    view = view_of(ours, "decoder", TokenInputs(tuple(ids[0].tolist())))
    assert view.kinds == ("self",)
    assert_maps_equal(view, "self", expected, causal=True, window=4 if "window" in name else None)


def test_sliding_window_cells_are_masked(tmp_path: Path) -> None:
    ours, _ = pair(DECODERS["mistral-window-4"], "decoder", tmp_path)
    got = view_of(ours, "decoder", TokenInputs(tuple(range(10)))).map("self", 0, 0)
    assert got.masked[9] == [True] * 6 + [False] * 4  # the last query sees only the 4 latest keys


@pytest.mark.parametrize("name", list(ENCODERS))
@torch.no_grad()
def test_encoder_self_attention_equals_transformers(name: str, tmp_path: Path) -> None:
    ours, theirs = pair(ENCODERS[name], "encoder", tmp_path)
    ids = token_ids(1, LENGTH, VOCAB - 4, seed=4) + 4  # clear of RoBERTa's padding id
    expected = theirs(ids, output_attentions=True).attentions
    view = view_of(ours, "encoder", TokenInputs(tuple(ids[0].tolist())))
    assert_maps_equal(view, "self", expected, causal=False)


@pytest.mark.parametrize("name", list(SEQ2SEQ))
@torch.no_grad()
def test_encoder_decoder_and_cross_attention_equal_transformers(name: str, tmp_path: Path) -> None:
    ours, theirs = pair(SEQ2SEQ[name], "encoder-decoder", tmp_path)
    start = theirs.config.decoder_start_token_id
    source = token_ids(1, LENGTH, VOCAB, seed=5)
    target = token_ids(1, TARGET, VOCAB, seed=6)
    decoder_input = torch.cat([torch.tensor([[start]]), target[:, :-1]], dim=1)  # teacher forcing
    out = theirs(input_ids=source, decoder_input_ids=decoder_input, output_attentions=True)
    view = view_of(ours, "encoder-decoder", TokenInputs(tuple(source[0].tolist()), tuple(target[0].tolist())), start)
    assert view.kinds == ("encoder", "decoder", "cross")
    assert_maps_equal(view, "encoder", out.encoder_attentions, causal=False)
    assert_maps_equal(view, "decoder", out.decoder_attentions, causal=True)
    assert_maps_equal(view, "cross", out.cross_attentions, causal=False)
    cross = view.map("cross", 0, 0)
    assert cross.queries == [str(start), *map(str, target[0, :-1].tolist())]
    assert cross.keys == list(map(str, source[0].tolist()))


def test_source_alone_shows_encoder_attention_only(tmp_path: Path) -> None:
    ours, _ = pair(SEQ2SEQ["bart"], "encoder-decoder", tmp_path)
    view = view_of(ours, "encoder-decoder", TokenInputs((5, 6, 7)), start=2)
    assert view.kinds == ("encoder",)
    with pytest.raises(InvalidOption, match="no 'cross' attention"):
        view.map("cross", 0, 0)


@pytest.fixture(scope="module")
def gpt2_view(tmp_path_factory: pytest.TempPathFactory) -> tuple[AttentionView, tuple[Tensor, ...]]:
    ours, theirs = pair(DECODERS["gpt2"], "decoder", tmp_path_factory.mktemp("gpt2"))
    ids = token_ids(1, LENGTH, VOCAB, seed=7)
    with torch.no_grad():
        expected = theirs(ids, output_attentions=True).attentions
    return view_of(ours, "decoder", TokenInputs(tuple(ids[0].tolist()))), expected


def test_negative_indices_count_from_the_end_and_bad_ones_are_refused(gpt2_view) -> None:
    view, _ = gpt2_view
    assert view.map("self", -1, -1).weights == view.map("self", 1, 3).weights
    with pytest.raises(InvalidOption, match="2 is not a valid layer"):
        view.map("self", 2, 0)
    with pytest.raises(InvalidOption, match="-5 is not a valid head"):
        view.map("self", 0, -5)


def test_a_window_of_rows_is_the_same_rows_of_the_whole_map(gpt2_view) -> None:
    view, _ = gpt2_view
    whole, window = view.map("self", 1, 2), view.map("self", 1, 2, rows=(4, 8))
    assert window.first_query == 4 and window.queries == whole.queries[4:8]
    assert torch.allclose(torch.tensor(window.weights), torch.tensor(whole.weights[4:8]), atol=1e-6)
    assert window.masked == whole.masked[4:8]


def expected_summary(probs: Tensor) -> dict[str, Any]:
    """The four numbers straight from one head's (T, T) causal map."""
    T = probs.shape[0]
    return {
        "entropy": float(-torch.special.xlogy(probs, probs).sum(-1).mean()),
        "first": float(probs[:, 0].mean()),
        "previous": float(probs[torch.arange(1, T), torch.arange(T - 1)].mean()),
        "itself": float(probs.diagonal().mean()),
    }


def test_head_summaries_follow_from_transformers_maps(gpt2_view) -> None:
    view, expected = gpt2_view
    summaries = view.summaries("self")
    assert [(s.layer, s.head) for s in summaries] == [(layer, head) for layer in range(2) for head in range(4)]
    for summary in summaries:
        want = expected_summary(expected[summary.layer][0, summary.head])
        for key, value in want.items():
            assert getattr(summary, key) == pytest.approx(value, abs=1e-5), (summary, key)


def test_summaries_in_small_chunks_equal_one_chunk(gpt2_view, monkeypatch: pytest.MonkeyPatch) -> None:
    view, _ = gpt2_view
    whole = view.summaries("self")
    monkeypatch.setattr("lmtui.inspect.attention.CHUNK_CELLS", 3 * 4 * LENGTH)  # 3 query rows at a time
    chunked = view.summaries("self")
    for a, b in zip(whole, chunked):
        assert a.entropy == pytest.approx(b.entropy, abs=1e-6) and a.previous == pytest.approx(b.previous, abs=1e-6)


def test_cross_attention_summaries_have_no_previous_or_self(tmp_path: Path) -> None:
    ours, _ = pair(SEQ2SEQ["marian"], "encoder-decoder", tmp_path)
    view = view_of(ours, "encoder-decoder", TokenInputs((5, 6, 7, 8), (9, 10, 0)), start=3)
    cross = view.summaries("cross")
    assert len(cross) == 3 * 2 and all(s.previous is None and s.itself is None for s in cross)
    assert all(0 <= s.first <= 1 and s.entropy >= 0 for s in cross)


def test_generation_is_unchanged_by_recording(tmp_path: Path) -> None:
    """Recording is a side channel: the forward inside it gives the same logits as outside."""
    ours, _ = pair(DECODERS["llama-gqa"], "decoder", tmp_path)
    ids = token_ids(1, LENGTH, VOCAB, seed=8)
    from lmtui.models.layers import record_attention

    with torch.no_grad():
        plain = ours(ids)
        with record_attention() as calls:
            recorded = ours(ids)
    assert len(calls) == 2 and torch.equal(plain, recorded)
    with torch.no_grad():
        ours(ids)
    assert len(calls) == 2  # nothing is recorded once the block ends


def assert_padded_maps_equal(view: AttentionView, kind: str, expected: tuple[Tensor, ...],
                             real_queries: Tensor, real_keys: Tensor) -> None:
    """Real queries' rows equal transformers'; padding keys and padding queries' rows are masked."""
    for layer, theirs in enumerate(expected):
        for head in range(theirs.shape[1]):
            got = view.map(kind, layer, head)
            weights, masked = torch.tensor(got.weights), torch.tensor(got.masked)
            diff = (weights[real_queries] - theirs[0, head][real_queries]).abs().max().item()
            assert diff < TOL, f"{kind} layer {layer} head {head}: max diff {diff:.3g}"
            assert masked[~real_queries].all() and (weights[~real_queries] == 0).all()
            assert masked[:, ~real_keys].all()


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa"])
@torch.no_grad()
def test_left_padded_decoder_masks_padding_like_transformers(name: str, tmp_path: Path) -> None:
    ours, theirs = pair(DECODERS[name], "decoder", tmp_path)
    ids = token_ids(1, 6, VOCAB, seed=9)[0].tolist()
    padded, mask = torch.tensor([[0] * 4 + ids]), torch.tensor([[0] * 4 + [1] * 6])
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # what transformers.generate passes
    expected = theirs(padded, attention_mask=mask, position_ids=positions, output_attentions=True).attentions
    view = record(ours, "decoder", TokenInputs(tuple(ids)), None, str, str, pad_to=10, pad_id=0)
    real = mask[0].bool()
    assert_padded_maps_equal(view, "self", expected, real, real)
    unpadded = view_of(ours, "decoder", TokenInputs(tuple(ids))).map("self", 1, 1)
    padded_map = view.map("self", 1, 1)
    assert torch.allclose(torch.tensor(padded_map.weights)[4:, 4:], torch.tensor(unpadded.weights), atol=1e-6)


@torch.no_grad()
def test_right_padded_encoder_and_source_mask_padding_like_transformers(tmp_path: Path) -> None:
    ours, theirs = pair(ENCODERS["bert"], "encoder", tmp_path / "bert")
    ids = (token_ids(1, 7, VOCAB - 4, seed=10) + 4)[0].tolist()
    padded, mask = torch.tensor([ids + [0] * 3]), torch.tensor([[1] * 7 + [0] * 3])
    expected = theirs(padded, attention_mask=mask, output_attentions=True).attentions
    view = record(ours, "encoder", TokenInputs(tuple(ids)), None, str, str, pad_to=10, pad_id=0)
    real = mask[0].bool()
    assert_padded_maps_equal(view, "self", expected, real, real)

    ours, theirs = pair(SEQ2SEQ["bart"], "encoder-decoder", tmp_path / "bart")
    target = token_ids(1, 5, VOCAB, seed=11)[0].tolist()
    decoder_input = torch.tensor([[2, *target[:-1]]])
    padded_source = torch.tensor([ids + [1] * 3])
    out = theirs(input_ids=padded_source, attention_mask=mask, decoder_input_ids=decoder_input,
                 output_attentions=True)
    view = record(ours, "encoder-decoder", TokenInputs(tuple(ids), tuple(target)), 2, str, str, pad_to=10, pad_id=1)
    assert_padded_maps_equal(view, "encoder", out.encoder_attentions, real, real)
    every = torch.ones(5, dtype=torch.bool)
    assert_padded_maps_equal(view, "cross", out.cross_attentions, every, real)
    assert view.map("cross", 0, 0).keys[-3:] == ["1", "1", "1"]


def test_summaries_ignore_padding(tmp_path: Path) -> None:
    ours, _ = pair(DECODERS["gpt2"], "decoder", tmp_path)
    ids = tuple(token_ids(1, 6, VOCAB, seed=12)[0].tolist())
    plain = view_of(ours, "decoder", TokenInputs(ids)).summaries("self")
    padded = record(ours, "decoder", TokenInputs(ids), None, str, str, pad_to=9, pad_id=0).summaries("self")
    for a, b in zip(plain, padded):
        for key in ("entropy", "first", "previous", "itself"):
            assert getattr(a, key) == pytest.approx(getattr(b, key), abs=1e-5), key


def test_padding_needs_a_pad_token(tmp_path: Path) -> None:
    ours, _ = pair(DECODERS["gpt2"], "decoder", tmp_path)
    with pytest.raises(InvalidOption, match="no padding token"):
        record(ours, "decoder", TokenInputs((1, 2)), None, str, str, pad_to=4, pad_id=None)


def test_an_empty_window_of_rows_is_empty(gpt2_view) -> None:
    view, _ = gpt2_view
    empty = view.map("self", 0, 0, rows=(3, 3))
    assert empty.weights == [] and empty.masked == [] and empty.queries == []
