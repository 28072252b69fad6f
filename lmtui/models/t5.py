"""T5: an encoder-decoder with pre-RMSNorm blocks, no attention scaling and learned relative positions.

There are no position embeddings: the first block of each stack owns a table of per-head biases,
one per bucket of key-minus-query distance (exact for near tokens, logarithmic up to
`relative_attention_max_distance`, one bucket beyond), and every block of that stack adds the same
bias to its attention scores. The encoder's buckets tell left from right; the decoder's only look back.
v1.0 checkpoints (`feed_forward_proj: relu`) read the output head from the embedding and rescale by
`d_model ** -0.5` before it; v1.1 / Flan (`gated-gelu`, `tie_word_embeddings: false`) have their own
head and no rescale. Attention scores are not scaled by `head_dim ** -0.5`: T5 folds it into `q`.

Module names follow `T5ForConditionalGeneration` checkpoints (`shared`, `encoder.block.0.layer.0.
SelfAttention.q`, `decoder.block.0.layer.1.EncDecAttention.k`, `lm_head`, ...). Which stored tensor
holds the embedding, and whether the head has its own, is read from the tensor names (`layout`):
transformers 5 writes `tie_word_embeddings: true` even for a model whose head is untied.

The shared RMSNorm computes what T5LayerNorm does whenever every weight has one dtype, as lmtui loads
them; they part only under transformers' float16 loading, which keeps `wo` in float32.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from lmtui.errors import LmtuiError
from lmtui.models.hf_config import MAX_VOCAB, bool_field, float_field, int_field, str_field
from lmtui.models.kv_cache import CrossCache, KVCache
from lmtui.models.layers import RMSNorm, activation, attend, attention_mask
from lmtui.models.weights import WeightTable

KIND = "encoder-decoder"
MODEL_TYPES = ("t5",)
HARD_CONTEXT = False  # relative position buckets have no end; n_positions is advisory

WEIGHTS = WeightTable(
    prefix="",  # T5ForConditionalGeneration keeps everything at the root
    # a cross-attention position table old checkpoints carry and transformers never uses
    ignored=re.compile(r"^decoder\.block\.0\.layer\.1\.EncDecAttention\.relative_attention_bias\.weight$"),
)

HEAD = "lm_head.weight"
EMBEDDINGS = ("shared.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight")


@dataclass(frozen=True)
class Config:
    vocab_size: int
    context_length: int  # n_positions, else 512: a soft limit, relative positions work past it
    hidden_size: int  # d_model
    n_layers: int  # decoder blocks
    n_encoder_layers: int
    n_heads: int
    head_dim: int  # d_kv: need not be hidden_size / n_heads
    d_ff: int
    eps: float
    num_buckets: int
    max_distance: int
    activation: str
    gated: bool  # v1.1: wi_0 (activated) * wi_1; v1.0: wi alone
    scale_decoder_outputs: bool  # multiply by d_model ** -0.5 before the head
    tie_word_embeddings: bool  # the head reads the embedding table (settled by `layout`)
    embedding: str = "shared.weight"  # the stored tensor that holds the embedding table (settled by `layout`)

    @property
    def n_kv_heads(self) -> int:
        return self.n_heads

    @classmethod
    def from_hf(cls, config: dict[str, Any]) -> Config:
        """Read config.json as T5Config does, with its defaults for anything left out."""
        act, gated = _feed_forward(config)
        n_encoder_layers = int_field(config, "num_layers", "num_hidden_layers", default=6)
        tie = bool_field(config, "tie_word_embeddings", default=True)
        return cls(
            vocab_size=int_field(config, "vocab_size", hi=MAX_VOCAB, default=32128),
            context_length=int_field(config, "n_positions", default=512),
            hidden_size=int_field(config, "d_model", "hidden_size", default=512),
            n_layers=int_field(config, "num_decoder_layers", default=n_encoder_layers),
            n_encoder_layers=n_encoder_layers,
            n_heads=int_field(config, "num_heads", "num_attention_heads", default=8),
            head_dim=int_field(config, "d_kv", "head_dim", default=64),
            d_ff=int_field(config, "d_ff", default=2048),
            eps=float_field(config, "layer_norm_epsilon", default=1e-6),
            num_buckets=int_field(config, "relative_attention_num_buckets", default=32),
            max_distance=int_field(config, "relative_attention_max_distance", default=128),
            activation=act,
            gated=gated,
            # transformers 5 saves the rescale on its own; older configs say it with tie_word_embeddings
            scale_decoder_outputs=bool_field(config, "scale_decoder_outputs", default=tie),
            tie_word_embeddings=tie,
        )


def _feed_forward(config: dict[str, Any]) -> tuple[str, bool]:
    """(activation, gated) from `feed_forward_proj` ("relu", "gated-gelu", "gated-silu", ...).

    As in T5Config, "gated-gelu" means the tanh approximation, and `dense_act_fn` / `is_gated_act`,
    which transformers writes into every config.json it saves, win over the derived values.
    """
    proj = str_field(config, "feed_forward_proj", default="relu")
    parts = proj.split("-")
    if len(parts) > 2 or (len(parts) == 2 and parts[0] != "gated"):
        raise LmtuiError(f"config.json: feed_forward_proj {proj!r} is not ACT or gated-ACT (e.g. relu, gated-gelu)")
    act = str_field(config, "dense_act_fn", default="gelu_new" if proj == "gated-gelu" else parts[-1])
    activation(act)  # unknown names fail here, before any tensor is read
    return act, bool_field(config, "is_gated_act", default=parts[0] == "gated")


def layout(config: Config, tensors: Mapping[str, object]) -> Config:
    """Where the checkpoint keeps the embedding and whether its head is its own, as transformers 5 loads it.

    The embedding table may be stored as `shared`, or only as `encoder.embed_tokens` /
    `decoder.embed_tokens` (madlad400), or only as the head; the first one stored is read and the
    other names point at it. A stored `lm_head.weight` is the head: transformers unties a head whose
    values differ from the embedding, whatever config.json says, and a stored copy of equal values
    gives the same logits either way. Without one the head is the embedding.
    """
    stored = [name for name in (*EMBEDDINGS, HEAD) if name in tensors]
    source = stored[0] if stored else EMBEDDINGS[0]
    return replace(config, embedding=source, tie_word_embeddings=HEAD not in tensors or source == HEAD)


def tied_weights(config: Config) -> dict[str, str]:
    """Our tensors that are the embedding table's other names (and the head's, when tied)."""
    names = EMBEDDINGS + ((HEAD,) if config.tie_word_embeddings else ())
    return {name: config.embedding for name in names if name != config.embedding}


def relative_position_bucket(relative: Tensor, bidirectional: bool, num_buckets: int, max_distance: int) -> Tensor:
    """Bucket of each key-minus-query distance, with transformers' float ops, so boundaries round the same."""
    buckets = torch.zeros_like(relative)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (relative > 0).to(torch.long) * num_buckets  # keys to the right: upper half
        relative = torch.abs(relative)
    else:
        relative = -torch.min(relative, torch.zeros_like(relative))  # keys ahead never happen: bucket 0
    max_exact = num_buckets // 2
    is_small = relative < max_exact
    large = max_exact + (
        torch.log(relative.float() / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact)
    ).to(torch.long)
    large = torch.min(large, torch.full_like(large, num_buckets - 1))
    return buckets + torch.where(is_small, relative, large)


def position_mask(bias: Tensor, key_mask: Tensor | None, causal: bool) -> Tensor:
    """The float mask SDPA adds to the scores: the position bias (1, nh, T, S) where a query may look,
    the dtype's lowest value where it may not, combined as transformers combines them."""
    T, S = bias.shape[-2:]
    allowed = attention_mask(key_mask, T, S, causal)
    if allowed is None and causal and T > 1:
        allowed = torch.ones(T, S, dtype=torch.bool, device=bias.device).tril(S - T)  # (T, S)
    if allowed is None:
        return bias
    return torch.where(allowed, bias, torch.finfo(bias.dtype).min)  # (B or 1, nh, T, S)


class Attention(nn.Module):
    """Multi-head attention without scaling; the first block of a stack also owns the position table."""

    def __init__(self, config: Config, layer: int, relative: bool, causal: bool) -> None:
        super().__init__()
        self.layer, self.causal = layer, causal
        self.n_heads, self.head_dim = config.n_heads, config.head_dim
        self.num_buckets, self.max_distance = config.num_buckets, config.max_distance
        inner = config.n_heads * config.head_dim
        self.q = nn.Linear(config.hidden_size, inner, bias=False)
        self.k = nn.Linear(config.hidden_size, inner, bias=False)
        self.v = nn.Linear(config.hidden_size, inner, bias=False)
        self.o = nn.Linear(inner, config.hidden_size, bias=False)
        if relative:
            self.relative_attention_bias = nn.Embedding(config.num_buckets, config.n_heads)

    def position_bias(self, q_len: int, k_len: int, past: int) -> Tensor:
        """Bias (1, nh, T, S) for T queries after `past` cached positions and S keys from position 0."""
        device = self.relative_attention_bias.weight.device
        q_pos = past + torch.arange(q_len, device=device)[:, None]  # (T, 1)
        k_pos = torch.arange(k_len, device=device)[None, :]  # (1, S)
        buckets = relative_position_bucket(k_pos - q_pos, not self.causal, self.num_buckets, self.max_distance)
        return self.relative_attention_bias(buckets).permute(2, 0, 1)[None]  # (1, nh, T, S)

    def split(self, x: Tensor) -> Tensor:
        B, T, _ = x.shape
        return x.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, nh, T, hs)

    def forward(self, x: Tensor, mask: Tensor | None, cache: KVCache | None = None) -> Tensor:
        """Self-attention: keys and values from x, after those cached."""
        k, v = self.split(self.k(x)), self.split(self.v(x))  # (B, nh, T, hs)
        if cache is not None:
            k, v = cache.update(self.layer, k, v)  # (B, nh, S, hs)
        return self.attend_to(x, k, v, mask)

    def attend_to(self, x: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        """Queries from x (B, T, C) over given keys and values (B, nh, S, hs); masks are explicit."""
        B, T, _ = x.shape
        y = attend(self.split(self.q(x)), k, v, mask, causal=False, scale=1.0)  # (B, nh, T, hs)
        return self.o(y.transpose(1, 2).reshape(B, T, -1))


class SelfAttentionLayer(nn.Module):
    def __init__(self, config: Config, layer: int, causal: bool) -> None:
        super().__init__()
        self.SelfAttention = Attention(config, layer, relative=layer == 0, causal=causal)
        self.layer_norm = RMSNorm(config.hidden_size, config.eps)

    def forward(self, x: Tensor, mask: Tensor | None, cache: KVCache | None) -> Tensor:
        return x + self.SelfAttention(self.layer_norm(x), mask, cache)


class CrossAttentionLayer(nn.Module):
    def __init__(self, config: Config, layer: int) -> None:
        super().__init__()
        self.EncDecAttention = Attention(config, layer, relative=False, causal=False)
        self.layer_norm = RMSNorm(config.hidden_size, config.eps)

    def forward(self, x: Tensor, cross: CrossCache, mask: Tensor | None) -> Tensor:
        layer = self.EncDecAttention.layer
        return x + self.EncDecAttention.attend_to(self.layer_norm(x), cross.keys[layer], cross.values[layer], mask)


class DenseReluDense(nn.Module):
    """v1.0: wo(act(wi(x))); gated (v1.1): wo(act(wi_0(x)) * wi_1(x)). No biases."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.gated = config.gated
        if config.gated:
            self.wi_0 = nn.Linear(config.hidden_size, config.d_ff, bias=False)
            self.wi_1 = nn.Linear(config.hidden_size, config.d_ff, bias=False)
        else:
            self.wi = nn.Linear(config.hidden_size, config.d_ff, bias=False)
        self.wo = nn.Linear(config.d_ff, config.hidden_size, bias=False)
        self.act = activation(config.activation)

    def forward(self, x: Tensor) -> Tensor:
        h = self.act(self.wi_0(x)) * self.wi_1(x) if self.gated else self.act(self.wi(x))  # (B, T, d_ff)
        return self.wo(h)


class FeedForwardLayer(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.DenseReluDense = DenseReluDense(config)
        self.layer_norm = RMSNorm(config.hidden_size, config.eps)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.DenseReluDense(self.layer_norm(x))


class Block(nn.Module):
    """Residual sublayers named `layer.0`, `layer.1`(, `layer.2`) as checkpoints name them:
    self-attention, cross-attention (decoder only), feed-forward."""

    def __init__(self, config: Config, layer: int, decoder: bool) -> None:
        super().__init__()
        self.layer = nn.ModuleList([SelfAttentionLayer(config, layer, causal=decoder)])
        if decoder:
            self.layer.append(CrossAttentionLayer(config, layer))
        self.layer.append(FeedForwardLayer(config))

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None,
        cache: KVCache | None = None,
        cross: CrossCache | None = None,
        cross_mask: Tensor | None = None,
    ) -> Tensor:
        x = self.layer[0](x, mask, cache)
        if cross is not None:
            x = self.layer[1](x, cross, cross_mask)
        return self.layer[-1](x)


class Stack(nn.Module):
    """The encoder or the decoder: `embed_tokens` (another name of the shared table), blocks, a final norm."""

    def __init__(self, config: Config, n_layers: int, decoder: bool) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.block = nn.ModuleList(Block(config, layer, decoder) for layer in range(n_layers))
        self.final_layer_norm = RMSNorm(config.hidden_size, config.eps)

    def position_bias(self, q_len: int, k_len: int, past: int) -> Tensor:
        """The first block's bias (1, nh, T, S), which every block of the stack adds."""
        return self.block[0].layer[0].SelfAttention.position_bias(q_len, k_len, past)


class T5(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.shared = nn.Embedding(config.vocab_size, config.hidden_size)
        self.encoder = Stack(config, config.n_encoder_layers, decoder=False)
        self.decoder = Stack(config, config.n_layers, decoder=True)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.tied = tied_weights(config)

    def encode(self, input_ids: Tensor, key_mask: Tensor | None = None) -> Tensor:
        """Encoder states (B, S, C) for input_ids (B, S); key_mask (B, S) is 1 for tokens, 0 for padding."""
        S = input_ids.shape[1]
        mask = position_mask(self.encoder.position_bias(S, S, 0), key_mask, causal=False)  # (B or 1, nh, S, S)
        x = self.encoder.embed_tokens(input_ids)  # (B, S, C)
        for block in self.encoder.block:
            x = block(x, mask)
        return self.encoder.final_layer_norm(x)

    def cross_cache(self, states: Tensor) -> CrossCache:
        """Every decoder block's cross-attention keys and values (B, nh, S, hs), computed once per source."""
        keys, values = [], []
        for block in self.decoder.block:
            attention = block.layer[1].EncDecAttention
            keys.append(attention.split(attention.k(states)))
            values.append(attention.split(attention.v(states)))
        return CrossCache(keys, values)

    def decode(
        self,
        decoder_ids: Tensor,
        cross: CrossCache,
        encoder_mask: Tensor | None = None,
        cache: KVCache | None = None,
    ) -> Tensor:
        """Logits (B, T, vocab) for decoder_ids (B, T) after `cache.length` cached positions.

        encoder_mask (B, S) marks the source's real tokens. The queries' relative positions start at
        the cache length, so a decode step gets the bias of its place in the output.
        """
        T = decoder_ids.shape[1]
        past = cache.length if cache is not None else 0
        mask = position_mask(self.decoder.position_bias(T, past + T, past), None, causal=True)  # (1, nh, T, S)
        cross_mask = attention_mask(encoder_mask, T, cross.keys[0].shape[2], causal=False)
        x = self.decoder.embed_tokens(decoder_ids)  # (B, T, C)
        for block in self.decoder.block:
            x = block(x, mask, cache, cross, cross_mask)
        if cache is not None:
            cache.advance(T)
        x = self.decoder.final_layer_norm(x)
        if self.config.scale_decoder_outputs:
            x = x * self.config.hidden_size**-0.5
        return self.lm_head(x)  # (B, T, vocab)

    def forward(self, input_ids: Tensor, decoder_input_ids: Tensor, key_mask: Tensor | None = None) -> Tensor:
        """Teacher-forced logits (B, T, vocab): the decoder reads decoder_input_ids given the source."""
        cross = self.cross_cache(self.encode(input_ids, key_mask))
        return self.decode(decoder_input_ids, cross, encoder_mask=key_mask)

    def new_cache(self, batch: int, max_len: int) -> KVCache:
        return KVCache.for_model(self.config, batch, max_len, like=self.shared.weight)


MODEL = T5
