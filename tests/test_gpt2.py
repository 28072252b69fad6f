"""Our GPT-2 equals transformers' on the same random checkpoints: full forward, cached decoding,
left-padded batches."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import GPT2LMHeadModel, GPT2Model

from conftest import save_gpt2
from lmtui.checkpoint import open_checkpoint
from lmtui.models.loading import load_model

TOL = 1e-4
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
    ours = load_model(open_checkpoint(folder), None, torch.device("cpu"))
    return ours, theirs


def tokens(batch: int, length: int, vocab: int = 320) -> torch.Tensor:
    return torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(1))


@torch.no_grad()
def test_full_forward(pair) -> None:
    ours, theirs = pair
    ids = tokens(2, 16)
    torch.testing.assert_close(ours(ids), theirs(ids).logits, atol=TOL, rtol=0)


@torch.no_grad()
def test_prefill_then_cached_steps_equal_full_forward(pair) -> None:
    ours, theirs = pair
    ids = tokens(2, 12)
    cache = ours.new_cache(batch=2, max_len=12)
    pieces = [ours(ids[:, :4], cache=cache)] + [ours(ids[:, t : t + 1], cache=cache) for t in range(4, 12)]
    assert cache.length == 12
    torch.testing.assert_close(torch.cat(pieces, dim=1), theirs(ids).logits, atol=TOL, rtol=0)


@torch.no_grad()
def test_left_padded_batch(pair) -> None:
    ours, theirs = pair
    ids = tokens(3, 10)
    mask = torch.ones(3, 10, dtype=torch.long)
    mask[0, :4] = 0
    mask[2, :1] = 0
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    expected = theirs(ids, attention_mask=mask, position_ids=positions).logits
    got = ours(ids, key_mask=mask)
    real = mask.bool()
    torch.testing.assert_close(got[real], expected[real], atol=TOL, rtol=0)
    torch.testing.assert_close(got[0, 4:], theirs(ids[:1, 4:]).logits[0], atol=TOL, rtol=0)


@torch.no_grad()
def test_left_padded_batch_with_cache(pair) -> None:
    ours, theirs = pair
    ids = tokens(2, 10)
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[1, :3] = 0
    cache = ours.new_cache(batch=2, max_len=10)
    prefill = ours(ids[:, :6], key_mask=mask[:, :6], cache=cache)
    steps = [ours(ids[:, t : t + 1], key_mask=mask[:, : t + 1], cache=cache) for t in range(6, 10)]
    got = torch.cat([prefill] + steps, dim=1)
    torch.testing.assert_close(got[1, 3:], theirs(ids[1:, 3:]).logits[0], atol=TOL, rtol=0)
    torch.testing.assert_close(got[0], theirs(ids[:1]).logits[0], atol=TOL, rtol=0)


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
    ours = load_model(open_checkpoint(folder), None, torch.device("cpu"))
    ids = tokens(1, 8)
    torch.testing.assert_close(ours(ids), theirs(ids).logits, atol=TOL, rtol=0)


def test_dtype_conversion_and_auto(gpt2_folder: Path) -> None:
    checkpoint = open_checkpoint(gpt2_folder)
    assert next(load_model(checkpoint, None, torch.device("cpu")).parameters()).dtype == torch.float32
    half = load_model(checkpoint, torch.bfloat16, torch.device("cpu"))
    assert {p.dtype for p in half.parameters()} == {torch.bfloat16}
    assert half.lm_head.weight is half.transformer.wte.weight
