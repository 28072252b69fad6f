"""Our GPT-2 equals transformers' on the same random checkpoints: full forward, cached decoding,
left-padded batches."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import GPT2LMHeadModel, GPT2Model

from conftest import save_gpt2
from helpers_models import assert_logits_match, hf_positions, left_padding_mask, load_ours, token_ids

CONFIGS = {
    "default": {},
    "untied": {"tie_word_embeddings": False},
    "inverse-layer-scale": {"scale_attn_by_inverse_layer_idx": True},
    "unscaled": {"scale_attn_weights": False},
    "n_inner-relu": {"n_inner": 40, "activation_function": "relu"},
    "odd-heads-gelu": {"n_embd": 30, "n_head": 5, "activation_function": "gelu"},
    "quick-gelu": {"activation_function": "quick_gelu", "layer_norm_epsilon": 1e-3},
}


@pytest.fixture(scope="module", params=list(CONFIGS), ids=list(CONFIGS))
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    folder = save_gpt2(tmp_path_factory.mktemp(request.param), **CONFIGS[request.param])
    theirs = GPT2LMHeadModel.from_pretrained(folder).eval()
    return load_ours(folder), theirs


def tokens(batch: int, length: int) -> torch.Tensor:
    return token_ids(batch, length, vocab=320)


@torch.no_grad()
def test_full_forward(pair) -> None:
    ours, theirs = pair
    ids = tokens(2, 16)
    assert_logits_match(ours(ids), theirs(ids).logits)


@torch.no_grad()
def test_prefill_then_cached_steps_equal_full_forward(pair) -> None:
    ours, theirs = pair
    ids = tokens(2, 12)
    cache = ours.new_cache(batch=2, max_len=12)
    pieces = [ours(ids[:, :4], cache=cache)] + [ours(ids[:, t : t + 1], cache=cache) for t in range(4, 12)]
    assert cache.length == 12
    assert_logits_match(torch.cat(pieces, dim=1), theirs(ids).logits)


@torch.no_grad()
def test_left_padded_batch(pair) -> None:
    ours, theirs = pair
    ids = tokens(3, 10)
    mask = left_padding_mask([6, 10, 9], total=10)
    expected = theirs(ids, attention_mask=mask, position_ids=hf_positions(mask)).logits
    got = ours(ids, key_mask=mask)
    real = mask.bool()
    assert_logits_match(got[real], expected[real])
    assert_logits_match(got[0, 4:], theirs(ids[:1, 4:]).logits[0])


@torch.no_grad()
def test_left_padded_batch_with_cache(pair) -> None:
    ours, theirs = pair
    ids = tokens(2, 10)
    mask = left_padding_mask([10, 7], total=10)
    cache = ours.new_cache(batch=2, max_len=10)
    prefill = ours(ids[:, :6], key_mask=mask[:, :6], cache=cache)
    steps = [ours(ids[:, t : t + 1], key_mask=mask[:, : t + 1], cache=cache) for t in range(6, 10)]
    got = torch.cat([prefill] + steps, dim=1)
    assert_logits_match(got[1, 3:], theirs(ids[1:, 3:]).logits[0])
    assert_logits_match(got[0], theirs(ids[:1]).logits[0])


def test_parameter_count_counts_tied_weights_once(pair) -> None:
    ours, theirs = pair
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())


@torch.no_grad()
def test_bare_gpt2model_layout_with_old_mask_buffers(tmp_path: Path) -> None:
    """Original OpenAI-converted checkpoints: no `transformer.` prefix, `attn.bias` buffers."""
    from safetensors.torch import load_file, save_file

    folder = save_gpt2(tmp_path / "bare")
    theirs = GPT2LMHeadModel.from_pretrained(folder).eval()
    GPT2Model.from_pretrained(folder).save_pretrained(folder)
    state = load_file(folder / "model.safetensors")
    assert not any(name.startswith("transformer.") for name in state)
    state["h.0.attn.bias"] = torch.tril(torch.ones(1, 1, 64, 64))
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    ids = tokens(1, 8)
    assert_logits_match(load_ours(folder)(ids), theirs(ids).logits)


def test_dtype_conversion_and_auto(gpt2_folder: Path) -> None:
    from lmtui.checkpoint import open_checkpoint
    from lmtui.models.loading import load_model

    checkpoint = open_checkpoint(gpt2_folder)
    assert next(load_model(checkpoint, None, torch.device("cpu")).parameters()).dtype == torch.float32
    half = load_model(checkpoint, torch.bfloat16, torch.device("cpu"))
    assert {p.dtype for p in half.parameters()} == {torch.bfloat16}
    assert half.lm_head.weight is half.transformer.wte.weight
