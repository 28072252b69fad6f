"""Our Llama / Mistral / Qwen2 equal transformers' on the same random checkpoints: full forward,
cached decoding, left-padded batches, every rope scaling, sliding windows and both config layouts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import (
    GPTNeoXConfig,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaModel,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)
from transformers.cache_utils import DynamicCache
from transformers.models.gpt_neox.modeling_gpt_neox import GPTNeoXRotaryEmbedding, apply_rotary_pos_emb

from helpers_models import (
    assert_logits_match,
    hf_positions,
    left_padding_mask,
    load_ours,
    randomize,
    save_hf_model,
    token_ids,
)
from lmtui.checkpoint import open_checkpoint
from lmtui.errors import LmtuiError
from lmtui.models import llama
from lmtui.models.loading import load_model
from lmtui.models.rope import RopeConfig, RotaryEmbedding, apply_rotary

VOCAB = 96
CLASSES = {
    "llama": (LlamaConfig, LlamaForCausalLM),
    "mistral": (MistralConfig, MistralForCausalLM),
    "qwen2": (Qwen2Config, Qwen2ForCausalLM),
}
BASE = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5)
LLAMA3 = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
          "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}  # head_dim 8: all three bands
CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "llama-tied-mha": ("llama", {"tie_word_embeddings": True, "num_key_value_heads": 4}),
    "llama-gqa1": ("llama", {"num_key_value_heads": 1}),
    "llama-gqa2-theta500k": ("llama", {"rope_parameters": {"rope_type": "default", "rope_theta": 500000.0}}),
    "llama-3-heads": ("llama", {"hidden_size": 48, "num_attention_heads": 3, "num_key_value_heads": 1}),
    "llama-5-heads": ("llama", {"hidden_size": 40, "num_attention_heads": 5, "num_key_value_heads": 5}),
    "llama-head-dim-16": ("llama", {"head_dim": 16}),
    "llama-biases-gelu": ("llama", {"attention_bias": True, "mlp_bias": True, "hidden_act": "gelu_pytorch_tanh"}),
    "llama-linear": ("llama", {"rope_parameters": {"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0}}),
    "llama-dynamic": ("llama", {"max_position_embeddings": 16,
                                "rope_parameters": {"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0}}),
    "llama3": ("llama", {"rope_parameters": LLAMA3, "tie_word_embeddings": True, "max_position_embeddings": 32768}),
    "llama-yarn": ("llama", {"rope_parameters": {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                                                 "original_max_position_embeddings": 16}}),
    "mistral-window-4": ("mistral", {"sliding_window": 4}),
    "mistral-no-window-gqa4": ("mistral", {"sliding_window": None, "num_attention_heads": 8,
                                           "num_key_value_heads": 4}),
    "qwen2": ("qwen2", {"tie_word_embeddings": True}),
    "qwen2-window-4": ("qwen2", {"use_sliding_window": True, "sliding_window": 4, "max_window_layers": 1}),
    "qwen2-yarn": ("qwen2", {"hidden_size": 64, "rope_parameters": {  # head_dim 16: betas and truncate matter
        "rope_type": "yarn", "rope_theta": 10000.0, "factor": 2.0, "original_max_position_embeddings": 64,
        "beta_fast": 8.0, "beta_slow": 2.0, "truncate": False, "attention_factor": 1.3}}),
}


def build(model_type: str, overrides: dict[str, Any]) -> nn.Module:
    config_class, model_class = CLASSES[model_type]
    config = config_class(**{**BASE, **overrides})
    return randomize(model_class(config))


@pytest.fixture(scope="module", params=list(CONFIGS))
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[nn.Module, nn.Module]:
    theirs = build(*CONFIGS[request.param])
    ours = load_ours(save_hf_model(theirs, tmp_path_factory.mktemp(request.param)))
    return ours, theirs


@torch.no_grad()
def test_full_forward(pair: tuple[nn.Module, nn.Module]) -> None:
    ours, theirs = pair
    ids = token_ids(2, 12, VOCAB)
    assert_logits_match(ours(ids), theirs(ids).logits)


@torch.no_grad()
def test_prefill_then_cached_steps_equal_full_forward(pair: tuple[nn.Module, nn.Module]) -> None:
    ours, theirs = pair
    ids = token_ids(1, 12, VOCAB)
    cache = ours.new_cache(batch=1, max_len=12)
    pieces = [ours(ids[:, :4], cache=cache)] + [ours(ids[:, t : t + 1], cache=cache) for t in range(4, 12)]
    assert cache.length == 12
    assert_logits_match(torch.cat(pieces, dim=1), theirs(ids).logits)


@torch.no_grad()
def test_left_padded_batch(pair: tuple[nn.Module, nn.Module]) -> None:
    ours, theirs = pair
    ids = token_ids(3, 12, VOCAB)
    mask = left_padding_mask([8, 12, 11], 12)
    got = ours(ids, key_mask=mask)
    expected = theirs(ids, attention_mask=mask, position_ids=hf_positions(mask)).logits
    real = mask.bool()
    assert_logits_match(got[real], expected[real])
    assert_logits_match(got[0, 4:], theirs(ids[:1, 4:]).logits[0])


@torch.no_grad()
def test_left_padded_batch_with_cache(pair: tuple[nn.Module, nn.Module]) -> None:
    ours, theirs = pair
    ids = token_ids(2, 12, VOCAB)
    mask = left_padding_mask([12, 9], 12)
    cache = ours.new_cache(batch=2, max_len=12)
    pieces = [ours(ids[:, :5], key_mask=mask[:, :5], cache=cache)]
    pieces += [ours(ids[:, t : t + 1], key_mask=mask[:, : t + 1], cache=cache) for t in range(5, 12)]
    expected = theirs(ids, attention_mask=mask, position_ids=hf_positions(mask)).logits
    real = mask.bool()
    assert_logits_match(torch.cat(pieces, dim=1)[real], expected[real])


def test_parameter_count(pair: tuple[nn.Module, nn.Module]) -> None:
    ours, theirs = pair
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())


@pytest.fixture(scope="module")
def dynamic_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[nn.Module, nn.Module]:
    theirs = build(*CONFIGS["llama-dynamic"])  # max_position_embeddings 16
    return load_ours(save_hf_model(theirs, tmp_path_factory.mktemp("dynamic"))), theirs


@torch.no_grad()
def test_dynamic_rope_beyond_max_positions(dynamic_pair: tuple[nn.Module, nn.Module]) -> None:
    """Past 16 positions the base is recomputed per call from the longest position; cached steps
    therefore differ from a full forward (in transformers too), so each path is compared with its own."""
    ours, theirs = dynamic_pair
    ids = token_ids(2, 24, VOCAB)
    assert_logits_match(ours(ids), theirs(ids).logits)
    mask = left_padding_mask([24, 13], 24)  # row 1 stays under 16 positions; the batch's longest decides
    expected = theirs(ids, attention_mask=mask, position_ids=hf_positions(mask)).logits
    assert_logits_match(ours(ids, key_mask=mask)[mask.bool()], expected[mask.bool()])
    cache, their_cache = ours.new_cache(batch=1, max_len=24), DynamicCache(config=theirs.config)
    for start, end in [(0, 4)] + [(t, t + 1) for t in range(4, 24)]:
        step = ids[:1, start:end]
        assert_logits_match(ours(step, cache=cache), theirs(step, past_key_values=their_cache, use_cache=True).logits)


@torch.no_grad()
def test_bare_llama_model_layout_with_tied_embeddings(tmp_path: Path) -> None:
    theirs = randomize(LlamaModel(LlamaConfig(**{**BASE, "tie_word_embeddings": True})))
    ours = load_ours(save_hf_model(theirs, tmp_path))
    ids = token_ids(2, 12, VOCAB)
    hidden = theirs(ids).last_hidden_state
    assert_logits_match(ours(ids), hidden @ theirs.embed_tokens.weight.T)


def v4_layout(config: dict[str, Any]) -> dict[str, Any]:
    """The same config as transformers 4.x wrote it: top-level rope_theta, rope_scaling with "type"."""
    params = dict(config.pop("rope_parameters"))
    config["rope_theta"] = params.pop("rope_theta")
    rope_type = params.pop("rope_type")
    config["rope_scaling"] = None if rope_type == "default" else {"type": rope_type, **params}
    return config


@pytest.mark.parametrize("name", ["llama-gqa2-theta500k", "llama-linear", "llama3", "llama-yarn", "qwen2-yarn"])
@torch.no_grad()
def test_v4_config_layout(name: str, tmp_path: Path) -> None:
    theirs = build(*CONFIGS[name])
    folder = save_hf_model(theirs, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(v4_layout(config)))
    ids = token_ids(2, 12, VOCAB)
    assert_logits_match(load_ours(folder)(ids), theirs(ids).logits)


@pytest.mark.parametrize(
    "name, edit",
    [
        ("mistral-window-4", {"sliding_window": None}),
        ("qwen2-window-4", {"layer_types": ["full_attention", "full_attention"]}),
        ("llama-gqa2-theta500k", {"rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}}),
        ("llama3", {"rope_parameters": {**LLAMA3, "rope_type": "default"}}),
        ("llama-yarn", {"rope_parameters": {"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0}}),
    ],
)
@torch.no_grad()
def test_windows_and_rope_scaling_change_the_logits(name: str, edit: dict[str, Any], tmp_path: Path) -> None:
    """The comparisons above could not pass by accident: without the window or the scaling, ours is far off."""
    theirs = build(*CONFIGS[name])
    folder = save_hf_model(theirs, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **edit}))
    ids = token_ids(1, 12, VOCAB)
    assert (load_ours(folder)(ids) - theirs(ids).logits).abs().max() > 1e-2


@torch.no_grad()
def test_old_checkpoints_rotary_buffers_are_ignored(tmp_path: Path) -> None:
    theirs = build("llama", {})
    folder = save_hf_model(theirs, tmp_path)
    tensors = load_file(folder / "model.safetensors")
    tensors["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch.ones(4)
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    ids = token_ids(1, 12, VOCAB)
    assert_logits_match(load_ours(folder)(ids), theirs(ids).logits)


@pytest.mark.parametrize("rope_type", ["default", "linear", "dynamic", "llama3", "yarn"])
@torch.no_grad()
def test_partial_rotary_equals_gpt_neox(rope_type: str) -> None:
    """Llama's classes do not run partial rotation; GPT-NeoX's rotate the first channels the same way."""
    extra = {"default": {}, "linear": {"factor": 2.0}, "dynamic": {"factor": 2.0}, "yarn": {"factor": 4.0},
             "llama3": {**LLAMA3, "rope_theta": 10000.0, "original_max_position_embeddings": 64}}[rope_type]
    params = {**extra, "rope_type": rope_type, "rope_theta": 10000.0, "partial_rotary_factor": 0.5}
    config = GPTNeoXConfig(hidden_size=64, num_attention_heads=4, max_position_embeddings=16, rope_parameters=params)
    theirs = GPTNeoXRotaryEmbedding(config)
    ours = RotaryEmbedding(RopeConfig.from_hf({"rope_parameters": params}, head_dim=16, max_positions=16))
    q = torch.randn(2, 4, 24, 16, generator=torch.Generator().manual_seed(0))
    positions = torch.arange(24)[None].expand(2, -1)
    their_cos, their_sin = theirs(q, positions)
    expected, _ = apply_rotary_pos_emb(q, q, their_cos, their_sin)
    cos, sin = ours(positions, q.dtype)
    assert cos.shape[-1] == 8
    torch.testing.assert_close(apply_rotary(q, cos, sin), expected, atol=1e-5, rtol=0)


def hf_config(**overrides: Any) -> dict[str, Any]:
    return {"model_type": "llama", "hidden_size": 32, "num_attention_heads": 4, "num_key_value_heads": 2,
            "num_hidden_layers": 2,
            "intermediate_size": 48, "vocab_size": VOCAB, "max_position_embeddings": 64, **overrides}


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"rope_scaling": {"type": "longrope", "factor": 2.0}}, "supported: default, linear, dynamic, llama3, yarn"),
        ({"rope_parameters": {"rope_type": "su"}}, "unsupported rope type 'su'"),
        ({"rope_parameters": {"rope_type": "linear"}}, "no factor"),
        ({"rope_scaling": {"type": "linear", "factor": 0}}, "factor must be a positive number"),
        ({"num_key_value_heads": 3}, "not a multiple of 3"),
        ({"hidden_size": 30}, "hidden_size (30) is not a multiple of 4"),
        ({"hidden_act": "swishy"}, "unsupported activation"),
        ({"model_type": "qwen2", "layer_types": ["sliding_attention"] * 2}, "no sliding window"),
        ({"model_type": "qwen2", "layer_types": ["full_attention"]}, "layer_types must list 2"),
    ],
)
def test_config_errors_are_clean(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(LmtuiError) as error:
        llama.Config.from_hf(hf_config(**overrides))
    assert message in str(error.value)


def test_unknown_rope_type_in_a_checkpoint_is_a_clean_error(tmp_path: Path) -> None:
    folder = save_hf_model(build("llama", {}), tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["rope_parameters"] = {"rope_type": "longrope", "rope_theta": 10000.0}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(LmtuiError, match="unsupported rope type 'longrope'"):
        load_ours(folder)


def test_sliding_windows_per_layer() -> None:
    windows = {
        "mistral": llama.Config.from_hf(hf_config(model_type="mistral", sliding_window=4)).windows,
        "mistral-default": llama.Config.from_hf(hf_config(model_type="mistral")).windows,
        "qwen2-off": llama.Config.from_hf(hf_config(model_type="qwen2", sliding_window=4)).windows,
        "qwen2-from-layer-1": llama.Config.from_hf(
            hf_config(model_type="qwen2", use_sliding_window=True, sliding_window=4, max_window_layers=1)
        ).windows,
        "llama": llama.Config.from_hf(hf_config(sliding_window=4)).windows,
    }
    assert windows == {
        "mistral": (4, 4),
        "mistral-default": (4096, 4096),
        "qwen2-off": (None, None),
        "qwen2-from-layer-1": (None, 4),
        "llama": (None, None),
    }


@torch.no_grad()
def test_bfloat16_load_keeps_rope_frequencies_in_float32(tmp_path: Path) -> None:
    theirs = build(*CONFIGS["llama3"])
    folder = save_hf_model(theirs, tmp_path)
    ours = load_model(open_checkpoint(folder), torch.bfloat16, torch.device("cpu"))
    assert ours.model.rotary_emb.inv_freq.dtype == torch.float32
    assert ours.lm_head.weight.dtype == torch.bfloat16
    ids = token_ids(1, 12, VOCAB)
    logits = ours(ids)
    assert logits.dtype == torch.bfloat16
    assert (logits.float() - theirs(ids).logits).abs().max() < 0.5  # bf16 rounding, not a wrong model
