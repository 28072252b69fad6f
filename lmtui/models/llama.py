"""Llama, Mistral and Qwen2: pre-RMSNorm blocks, rotary positions, grouped-query attention, SwiGLU.

The three transformers classes compute the same thing and differ only in what they read from
config.json: Llama takes `attention_bias` / `mlp_bias`, Mistral has no biases and one sliding
window for every layer, Qwen2 always biases q/k/v (never o_proj or the MLP) and slides only when
`use_sliding_window` is set, on the layers `layer_types` (or `max_window_layers`) name. Module
names follow `LlamaForCausalLM` checkpoints (`model.layers.0.self_attn.q_proj`, ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from lmtui.errors import LmtuiError
from lmtui.models.hf_config import MAX_VOCAB, bool_field, divisible, float_field, int_field, str_field
from lmtui.models.kv_cache import KVCache
from lmtui.models.layers import GatedMLP, RMSNorm, activation, attend, attention_mask, default_positions
from lmtui.models.rope import RopeConfig, RotaryEmbedding, apply_rotary
from lmtui.models.weights import WeightTable

KIND = "decoder"
MODEL_TYPES = ("llama", "mistral", "qwen2")
HARD_CONTEXT = True  # trained context; rotary positions past it are out of distribution

WEIGHTS = WeightTable(
    prefix="model.",
    outside=("lm_head.weight",),
    ignored=re.compile(r"\brotary_emb\.inv_freq$"),  # rope buffers old checkpoints saved
)

# Each transformers config class's defaults for fields a config.json may leave out.
MAX_POSITIONS = {"llama": 2048, "mistral": 4096 * 32, "qwen2": 32768}
KV_HEADS = {"mistral": 8, "qwen2": 32}  # llama: one per attention head
DEFAULT_WINDOW = 4096  # Mistral's and Qwen2's `sliding_window` when the key is absent (null: none)


@dataclass(frozen=True)
class Config:
    vocab_size: int
    context_length: int
    hidden_size: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    tie_word_embeddings: bool
    intermediate_size: int
    rms_norm_eps: float
    hidden_act: str
    attention_bias: bool  # q, k and v projections
    o_proj_bias: bool
    mlp_bias: bool
    windows: tuple[int | None, ...]  # per layer: how many positions a query sees, None for all
    rope: RopeConfig

    @classmethod
    def from_hf(cls, config: dict[str, Any]) -> Config:
        model_type = str_field(config, "model_type")
        hidden = int_field(config, "hidden_size")
        heads = int_field(config, "num_attention_heads")
        kv_heads = int_field(config, "num_key_value_heads", default=KV_HEADS.get(model_type, heads))
        divisible(heads, kv_heads, "num_attention_heads")
        if config.get("head_dim") is not None:
            head_dim = int_field(config, "head_dim")
        else:
            head_dim = divisible(hidden, heads, "hidden_size")
        act = str_field(config, "hidden_act", default="silu")
        activation(act)  # unknown names fail here, before any tensor is read
        n_layers = int_field(config, "num_hidden_layers")
        context = int_field(config, "max_position_embeddings", default=MAX_POSITIONS[model_type])
        return cls(
            vocab_size=int_field(config, "vocab_size", hi=MAX_VOCAB),
            context_length=context,
            hidden_size=hidden,
            n_layers=n_layers,
            n_heads=heads,
            n_kv_heads=kv_heads,
            head_dim=head_dim,
            tie_word_embeddings=bool_field(config, "tie_word_embeddings", default=False),
            intermediate_size=int_field(config, "intermediate_size"),
            rms_norm_eps=float_field(config, "rms_norm_eps", default=1e-6),
            hidden_act=act,
            **_biases(config, model_type),
            windows=_windows(config, model_type, n_layers),
            rope=_rope(config, model_type, head_dim, context),
        )


def _biases(config: dict[str, Any], model_type: str) -> dict[str, bool]:
    if model_type == "qwen2":
        return dict(attention_bias=True, o_proj_bias=False, mlp_bias=False)
    if model_type == "mistral":
        return dict(attention_bias=False, o_proj_bias=False, mlp_bias=False)
    attention_bias = bool_field(config, "attention_bias", default=False)
    return dict(attention_bias=attention_bias, o_proj_bias=attention_bias,
                mlp_bias=bool_field(config, "mlp_bias", default=False))


def _windows(config: dict[str, Any], model_type: str, n_layers: int) -> tuple[int | None, ...]:
    """Per-layer sliding windows, read the way each transformers class reads them."""
    if model_type == "llama":
        return (None,) * n_layers  # LlamaModel never slides, whatever the config says
    window = _sliding_window(config)
    if model_type == "mistral":
        return (window,) * n_layers
    if not bool_field(config, "use_sliding_window", default=False):
        window = None
    layer_types = config.get("layer_types")
    if layer_types is None:
        first = int_field(config, "max_window_layers", default=28, lo=0)
        return tuple(window if layer >= first else None for layer in range(n_layers))
    known = ("full_attention", "sliding_attention")
    if not isinstance(layer_types, list) or len(layer_types) != n_layers or not set(layer_types) <= set(known):
        raise LmtuiError(f"config.json: layer_types must list {n_layers} of {' / '.join(known)}")
    if window is None and "sliding_attention" in layer_types:
        raise LmtuiError("config.json: layer_types has sliding_attention layers but no sliding window is set")
    return tuple(window if kind == "sliding_attention" else None for kind in layer_types)


def _sliding_window(config: dict[str, Any]) -> int | None:
    if "sliding_window" in config and config["sliding_window"] is None:
        return None
    return int_field(config, "sliding_window", default=DEFAULT_WINDOW)


def _rope(config: dict[str, Any], model_type: str, head_dim: int, context: int) -> RopeConfig:
    rope = RopeConfig.from_hf(config, head_dim, context)
    if rope.rope_type == "default" and rope.dim != head_dim:
        # transformers' default rope for these classes rotates the whole head, whatever
        # partial_rotary_factor says (only the scaled types honour it)
        rope = RopeConfig("default", rope.theta, head_dim, rope.max_positions)
    return rope


class Attention(nn.Module):
    def __init__(self, config: Config, layer: int) -> None:
        super().__init__()
        self.layer = layer
        self.window = config.windows[layer]
        self.n_heads, self.n_kv_heads, self.head_dim = config.n_heads, config.n_kv_heads, config.head_dim
        q_size, kv_size = config.n_heads * config.head_dim, config.n_kv_heads * config.head_dim
        self.q_proj = nn.Linear(config.hidden_size, q_size, bias=config.attention_bias)
        self.k_proj = nn.Linear(config.hidden_size, kv_size, bias=config.attention_bias)
        self.v_proj = nn.Linear(config.hidden_size, kv_size, bias=config.attention_bias)
        self.o_proj = nn.Linear(q_size, config.hidden_size, bias=config.o_proj_bias)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | None, cache: KVCache | None) -> Tensor:
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, nh, T, hs)
        k = self.k_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, nkv, T, hs)
        v = self.v_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, nkv, T, hs)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if cache is not None:
            k, v = cache.update(self.layer, k, v)  # (B, nkv, S, hs), un-repeated
        y = attend(q, k, v, mask, causal=True, scale=self.head_dim**-0.5)  # (B, nh, T, hs)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, -1))


class Block(nn.Module):
    def __init__(self, config: Config, layer: int) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = Attention(config, layer)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = GatedMLP(config.hidden_size, config.intermediate_size, config.hidden_act, config.mlp_bias)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | None, cache: KVCache | None) -> Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, cache)
        return x + self.mlp(self.post_attention_layernorm(x))


class Llama(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.model = nn.ModuleDict(
            dict(
                embed_tokens=nn.Embedding(config.vocab_size, config.hidden_size),
                layers=nn.ModuleList(Block(config, layer) for layer in range(config.n_layers)),
                norm=RMSNorm(config.hidden_size, config.rms_norm_eps),
                rotary_emb=RotaryEmbedding(config.rope),
            )
        )
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.tied = {"lm_head.weight": "model.embed_tokens.weight"} if config.tie_word_embeddings else {}

    def forward(
        self,
        input_ids: Tensor,
        key_mask: Tensor | None = None,
        positions: Tensor | None = None,
        cache: KVCache | None = None,
    ) -> Tensor:
        """Logits (B, T, vocab) for input_ids (B, T) after `cache.length` cached positions.

        key_mask (B, cached + T): 1 for tokens, 0 for (left) padding. positions (B, T) default to
        counting real tokens, so a left-padded row sees the same rotations as unpadded. Sliding
        windows count physical slots, padding included, as transformers' masks do.
        """
        T = input_ids.shape[1]
        past = cache.length if cache is not None else 0
        if positions is None:
            positions = default_positions(key_mask, T, past, input_ids.device)
        x = self.model.embed_tokens(input_ids)  # (B, T, C)
        cos, sin = self.model.rotary_emb(positions, x.dtype)  # (B, T, rot)
        masks = {w: attention_mask(key_mask, T, past + T, causal=True, window=w) for w in set(self.config.windows)}
        for block in self.model.layers:
            x = block(x, cos, sin, masks[block.self_attn.window], cache)
        if cache is not None:
            cache.advance(T)
        return self.lm_head(self.model.norm(x))  # (B, T, vocab)

    def new_cache(self, batch: int, max_len: int) -> KVCache:
        return KVCache.for_model(self.config, batch, max_len, like=self.model.embed_tokens.weight)


MODEL = Llama
