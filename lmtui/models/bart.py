"""BART: a post-LayerNorm encoder-decoder with learned positions and a LayerNorm over the embeddings.

Module names follow `BartForConditionalGeneration` checkpoints (`model.encoder.layers.0.self_attn.q_proj`,
`model.decoder.layers.0.encoder_attn.k_proj`, `lm_head`, `final_logits_bias`); a bare `BartModel`
save lacks the `model.` prefix, the head and the bias. What transformers ties depends on
`tie_word_embeddings` alone: when set, both sides' `embed_tokens` and `lm_head` are `model.shared`
(only that one is saved); when not, all four are separate tensors and `shared` is stored but never
read. Marian (marian.py) builds the same layers around other embeddings and reuses this file's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from lmtui.models.hf_config import MAX_VOCAB, bool_field, divisible, int_field, str_field
from lmtui.models.kv_cache import CrossCache, KVCache
from lmtui.models.layers import activation, attend, attention_mask
from lmtui.models.weights import WeightTable

KIND = "encoder-decoder"
MODEL_TYPES = ("bart",)
HARD_CONTEXT = True  # learned absolute positions end there

WEIGHTS = WeightTable(
    prefix="model.",
    outside=("lm_head.weight", "final_logits_bias"),
    ignored=re.compile(r"(^|\.)(encoder|decoder)\.version$"),  # fairseq leftovers transformers skips too
)

POSITION_OFFSET = 2  # fairseq kept two rows of the position table below the first real position
FP16_LIMIT = torch.finfo(torch.float16).max - 1000  # where transformers clamps an overflowing fp16 encoder


@dataclass(frozen=True)
class Config:
    vocab_size: int
    context_length: int  # tokens per side: the source, and the decoder's start token plus output
    hidden_size: int
    n_layers: int  # decoder layers (what the KV cache holds)
    n_encoder_layers: int
    n_heads: int  # decoder heads, self and cross attention
    n_encoder_heads: int
    decoder_ffn_dim: int
    encoder_ffn_dim: int
    activation: str
    scale_embedding: bool  # token embeddings times sqrt(hidden_size)
    tie_word_embeddings: bool
    final_logits_bias: bool = True  # `layout` clears it for saves without one (BartModel)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.n_heads

    @property
    def n_kv_heads(self) -> int:
        return self.n_heads

    @property
    def embed_scale(self) -> float:
        return math.sqrt(self.hidden_size) if self.scale_embedding else 1.0

    @classmethod
    def from_hf(cls, config: dict[str, Any]) -> Config:
        hidden = int_field(config, "d_model", "hidden_size")
        heads = int_field(config, "decoder_attention_heads")
        encoder_heads = int_field(config, "encoder_attention_heads", "num_attention_heads")
        divisible(hidden, heads, "d_model")
        divisible(hidden, encoder_heads, "d_model")
        act = str_field(config, "activation_function", default="gelu")
        activation(act)  # unknown names fail here, before any tensor is read
        return cls(
            vocab_size=int_field(config, "vocab_size", hi=MAX_VOCAB),
            context_length=int_field(config, "max_position_embeddings"),
            hidden_size=hidden,
            n_layers=int_field(config, "decoder_layers"),
            n_encoder_layers=int_field(config, "encoder_layers", "num_hidden_layers"),
            n_heads=heads,
            n_encoder_heads=encoder_heads,
            decoder_ffn_dim=int_field(config, "decoder_ffn_dim"),
            encoder_ffn_dim=int_field(config, "encoder_ffn_dim"),
            activation=act,
            scale_embedding=bool_field(config, "scale_embedding", default=False),
            tie_word_embeddings=bool_field(config, "tie_word_embeddings", default=True),
        )


def layout(config: Config, tensors: Mapping[str, object]) -> Config:
    """Whether the checkpoint has a `final_logits_bias` (transformers uses zeros when it does not)."""
    return replace(config, final_logits_bias="final_logits_bias" in tensors)


class Attention(nn.Module):
    """Multi-head attention with biased projections. Keys and values come from the caller, so one
    module serves self-attention (through a KV cache) and cross-attention (from a CrossCache)."""

    def __init__(self, hidden: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.scale = (hidden // n_heads) ** -0.5
        self.k_proj = nn.Linear(hidden, hidden)
        self.v_proj = nn.Linear(hidden, hidden)
        self.q_proj = nn.Linear(hidden, hidden)
        self.out_proj = nn.Linear(hidden, hidden)

    def split_heads(self, x: Tensor) -> Tensor:
        B, T, C = x.shape
        return x.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2)  # (B, nh, T, hs)

    def keys_values(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.split_heads(self.k_proj(x)), self.split_heads(self.v_proj(x))  # 2 x (B, nh, S, hs)

    def forward(self, x: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, causal: bool) -> Tensor:
        B, T, C = x.shape
        y = attend(self.split_heads(self.q_proj(x)), k, v, mask, causal, self.scale)  # (B, nh, T, hs)
        return self.out_proj(y.transpose(1, 2).reshape(B, T, C))


class EncoderLayer(nn.Module):
    """Post-LN: each sublayer adds to the residual, then normalises."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        C = config.hidden_size
        self.self_attn = Attention(C, config.n_encoder_heads)
        self.self_attn_layer_norm = nn.LayerNorm(C)
        self.fc1 = nn.Linear(C, config.encoder_ffn_dim)
        self.fc2 = nn.Linear(config.encoder_ffn_dim, C)
        self.final_layer_norm = nn.LayerNorm(C)
        self.act = activation(config.activation)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        k, v = self.self_attn.keys_values(x)  # (B, nh, S, hs)
        x = self.self_attn_layer_norm(x + self.self_attn(x, k, v, mask, causal=False))
        x = self.final_layer_norm(x + self.fc2(self.act(self.fc1(x))))
        if x.dtype == torch.float16 and not torch.isfinite(x).all():
            x = x.clamp(-FP16_LIMIT, FP16_LIMIT)  # as transformers does, so fp16 runs stay comparable
        return x


class DecoderLayer(nn.Module):
    def __init__(self, config: Config, layer: int) -> None:
        super().__init__()
        C = config.hidden_size
        self.layer = layer
        self.self_attn = Attention(C, config.n_heads)
        self.self_attn_layer_norm = nn.LayerNorm(C)
        self.encoder_attn = Attention(C, config.n_heads)
        self.encoder_attn_layer_norm = nn.LayerNorm(C)
        self.fc1 = nn.Linear(C, config.decoder_ffn_dim)
        self.fc2 = nn.Linear(config.decoder_ffn_dim, C)
        self.final_layer_norm = nn.LayerNorm(C)
        self.act = activation(config.activation)

    def forward(
        self,
        x: Tensor,
        self_mask: Tensor | None,
        cross: tuple[Tensor, Tensor],
        cross_mask: Tensor | None,
        cache: KVCache | None,
    ) -> Tensor:
        k, v = self.self_attn.keys_values(x)  # (B, nh, T, hs)
        if cache is not None:
            k, v = cache.update(self.layer, k, v)  # (B, nh, past + T, hs)
        x = self.self_attn_layer_norm(x + self.self_attn(x, k, v, self_mask, causal=True))
        x = self.encoder_attn_layer_norm(x + self.encoder_attn(x, *cross, cross_mask, causal=False))
        return self.final_layer_norm(x + self.fc2(self.act(self.fc1(x))))


class Stack(nn.Module):
    """One side, encoder or decoder: its own token embeddings (tied or not), learned positions
    offset by two, a LayerNorm over their sum, then the layers."""

    def __init__(self, config: Config, layers: list[nn.Module]) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.embed_positions = nn.Embedding(config.context_length + POSITION_OFFSET, config.hidden_size)
        self.layernorm_embedding = nn.LayerNorm(config.hidden_size)
        self.layers = nn.ModuleList(layers)
        self.embed_scale = config.embed_scale

    def embed(self, ids: Tensor, past: int) -> Tensor:
        """(B, T, C) inputs for ids (B, T) at positions past, past + 1, ... (padding is not skipped:
        transformers counts slots on both sides)."""
        positions = torch.arange(past, past + ids.shape[1], device=ids.device) + POSITION_OFFSET  # (T,)
        x = self.embed_tokens(ids) * self.embed_scale + self.embed_positions(positions)  # (B, T, C)
        return self.layernorm_embedding(x)


class EncoderDecoder(nn.Module):
    """What BART and Marian do once built, the same for both: the encoder runs once, each decoder
    layer's cross-attention keys and values are computed once from its output, and the decoder
    steps over a KV cache. Subclasses build `model.encoder` / `model.decoder` (each with
    `embed(ids, past)` and `layers`), `lm_head`, `final_logits_bias` and `tied`."""

    config: Config
    model: nn.ModuleDict
    lm_head: nn.Linear
    final_logits_bias: Tensor | None

    def encode(self, input_ids: Tensor, key_mask: Tensor | None = None) -> Tensor:
        """Encoder states (B, S, C) for input_ids (B, S); key_mask (B, S) is 0 on padding."""
        S = input_ids.shape[1]
        mask = attention_mask(key_mask, S, S, causal=False)
        x = self.model.encoder.embed(input_ids, past=0)  # (B, S, C)
        for layer in self.model.encoder.layers:
            x = layer(x, mask)
        return x

    def cross_cache(self, states: Tensor) -> CrossCache:
        """Every decoder layer's cross-attention keys and values (B, nh, S, hs), for all later steps."""
        pairs = [layer.encoder_attn.keys_values(states) for layer in self.model.decoder.layers]
        return CrossCache([k for k, _ in pairs], [v for _, v in pairs])

    def decode(
        self,
        decoder_ids: Tensor,
        cross: CrossCache,
        encoder_mask: Tensor | None = None,
        cache: KVCache | None = None,
    ) -> Tensor:
        """Logits (B, T, V) for decoder_ids (B, T) after `cache.length` cached positions.

        encoder_mask (B, S) is the source's key mask (0 on padding), when the source was padded.
        """
        T, S = decoder_ids.shape[1], cross.keys[0].shape[2]
        past = cache.length if cache is not None else 0
        self_mask = attention_mask(None, T, past + T, causal=True)
        cross_mask = attention_mask(encoder_mask, T, S, causal=False)
        x = self.model.decoder.embed(decoder_ids, past)  # (B, T, C)
        for layer, k, v in zip(self.model.decoder.layers, cross.keys, cross.values):
            x = layer(x, self_mask, (k, v), cross_mask, cache)
        if cache is not None:
            cache.advance(T)
        logits = self.lm_head(x)  # (B, T, V)
        if self.final_logits_bias is not None:
            logits = logits + self.final_logits_bias.to(logits.dtype)
        return logits

    def forward(self, input_ids: Tensor, decoder_input_ids: Tensor, key_mask: Tensor | None = None) -> Tensor:
        """Teacher-forced logits (B, T, V): the source (B, S) encoded, the decoder reading (B, T)."""
        cross = self.cross_cache(self.encode(input_ids, key_mask))
        return self.decode(decoder_input_ids, cross, encoder_mask=key_mask)

    def new_cache(self, batch: int, max_len: int) -> KVCache:
        return KVCache.for_model(self.config, batch, max_len, like=self.lm_head.weight)


class Bart(EncoderDecoder):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.model = nn.ModuleDict(
            dict(
                shared=nn.Embedding(config.vocab_size, config.hidden_size),
                encoder=Stack(config, [EncoderLayer(config) for _ in range(config.n_encoder_layers)]),
                decoder=Stack(config, [DecoderLayer(config, layer) for layer in range(config.n_layers)]),
            )
        )
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        bias = torch.zeros(1, config.vocab_size) if config.final_logits_bias else None
        self.register_buffer("final_logits_bias", bias)
        tied = ("model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight", "lm_head.weight")
        self.tied = {name: "model.shared.weight" for name in tied} if config.tie_word_embeddings else {}


MODEL = Bart
