"""GPT-2: learned absolute positions, pre-LayerNorm blocks, fused qkv projection.

Module names follow `GPT2LMHeadModel` checkpoints (`transformer.h.0.attn.c_attn`, ...). The
checkpoint stores Conv1D weights as (in, out); we keep `nn.Linear` (out, in) and transpose once
while loading.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from lmtui.errors import LmtuiError
from lmtui.models.hf_config import MAX_VOCAB, bool_field, divisible, float_field, int_field, str_field
from lmtui.models.kv_cache import KVCache
from lmtui.models.layers import activation, attend, attention_mask, default_positions
from lmtui.models.weights import WeightTable

KIND = "decoder"
MODEL_TYPES = ("gpt2",)
HARD_CONTEXT = True  # learned absolute positions end there

WEIGHTS = WeightTable(
    prefix="transformer.",
    outside=("lm_head.weight",),
    ignored=re.compile(r"\.attn\.(masked_)?bias$"),  # causal-mask buffers of old checkpoints
    transposed=re.compile(r"\.(c_attn|c_proj|c_fc)\.weight$"),
)


@dataclass(frozen=True)
class Config:
    vocab_size: int
    context_length: int
    hidden_size: int
    n_layers: int
    n_heads: int
    inner_size: int
    activation: str
    eps: float
    tie_word_embeddings: bool
    scale_attn_weights: bool
    scale_attn_by_inverse_layer_idx: bool

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.n_heads

    @property
    def n_kv_heads(self) -> int:
        return self.n_heads

    @classmethod
    def from_hf(cls, config: dict[str, Any]) -> Config:
        if config.get("add_cross_attention"):
            raise LmtuiError("config.json: GPT-2 with add_cross_attention is not a standalone decoder")
        hidden = int_field(config, "n_embd", "hidden_size")
        heads = int_field(config, "n_head", "num_attention_heads")
        divisible(hidden, heads, "n_embd")
        act = str_field(config, "activation_function", default="gelu_new")
        activation(act)  # unknown names fail here, before any tensor is read
        return cls(
            vocab_size=int_field(config, "vocab_size", hi=MAX_VOCAB),
            context_length=int_field(config, "n_positions", "max_position_embeddings"),
            hidden_size=hidden,
            n_layers=int_field(config, "n_layer", "num_hidden_layers"),
            n_heads=heads,
            inner_size=int_field(config, "n_inner", default=4 * hidden),
            activation=act,
            eps=float_field(config, "layer_norm_epsilon", default=1e-5),
            tie_word_embeddings=bool_field(config, "tie_word_embeddings", default=True),
            scale_attn_weights=bool_field(config, "scale_attn_weights", default=True),
            scale_attn_by_inverse_layer_idx=bool_field(config, "scale_attn_by_inverse_layer_idx", default=False),
        )


class Attention(nn.Module):
    def __init__(self, config: Config, layer: int) -> None:
        super().__init__()
        self.layer = layer
        self.n_heads = config.n_heads
        self.c_attn = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.c_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.scale = 1 / math.sqrt(config.head_dim) if config.scale_attn_weights else 1.0
        if config.scale_attn_by_inverse_layer_idx:
            self.scale /= layer + 1

    def forward(self, x: Tensor, mask: Tensor | None, cache: KVCache | None) -> Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)  # 3 x (B, T, C)
        q, k, v = (t.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        if cache is not None:
            k, v = cache.update(self.layer, k, v)  # (B, nh, S, hs)
        y = attend(q, k, v, mask, causal=True, scale=self.scale)  # (B, nh, T, hs)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.hidden_size, config.inner_size)
        self.c_proj = nn.Linear(config.inner_size, config.hidden_size)
        self.act = activation(config.activation)

    def forward(self, x: Tensor) -> Tensor:
        return self.c_proj(self.act(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, config: Config, layer: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.hidden_size, eps=config.eps)
        self.attn = Attention(config, layer)
        self.ln_2 = nn.LayerNorm(config.hidden_size, eps=config.eps)
        self.mlp = MLP(config)

    def forward(self, x: Tensor, mask: Tensor | None, cache: KVCache | None) -> Tensor:
        x = x + self.attn(self.ln_1(x), mask, cache)
        return x + self.mlp(self.ln_2(x))


class GPT2(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.hidden_size),
                wpe=nn.Embedding(config.context_length, config.hidden_size),
                h=nn.ModuleList(Block(config, layer) for layer in range(config.n_layers)),
                ln_f=nn.LayerNorm(config.hidden_size, eps=config.eps),
            )
        )
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.tied = {"lm_head.weight": "transformer.wte.weight"} if config.tie_word_embeddings else {}

    def forward(
        self,
        input_ids: Tensor,
        key_mask: Tensor | None = None,
        positions: Tensor | None = None,
        cache: KVCache | None = None,
    ) -> Tensor:
        """Logits (B, T, vocab) for input_ids (B, T) after `cache.length` cached positions.

        key_mask (B, cached + T): 1 for tokens, 0 for (left) padding. positions (B, T) default to
        counting real tokens, so a left-padded row sees the same positions as unpadded.
        """
        T = input_ids.shape[1]
        past = cache.length if cache is not None else 0
        if positions is None:
            positions = default_positions(key_mask, T, past, input_ids.device)
        mask = attention_mask(key_mask, T, past + T, causal=True)
        x = self.transformer.wte(input_ids) + self.transformer.wpe(positions)  # (B, T, C)
        for block in self.transformer.h:
            x = block(x, mask, cache)
        if cache is not None:
            cache.advance(T)
        return self.lm_head(self.transformer.ln_f(x))  # (B, T, vocab)

    def new_cache(self, batch: int, max_len: int) -> KVCache:
        return KVCache.for_model(self.config, batch, max_len, like=self.lm_head.weight)

MODEL = GPT2
