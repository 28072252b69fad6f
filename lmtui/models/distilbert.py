"""DistilBERT: BERT with half the layers, no token types and no pooler, under its own names.

Module names follow `DistilBertForMaskedLM` checkpoints (`distilbert.transformer.layer.0.attention
.q_lin`, `sa_layer_norm`, `ffn.lin1`, ..., and the head `vocab_transform`, `vocab_layer_norm`,
`vocab_projector`); a bare `DistilBertModel` save has no `distilbert.` prefix and no head. Every
LayerNorm uses eps 1e-12 whatever the config says. Sinusoidal position tables
(`sinusoidal_pos_embds`) are saved as ordinary weights, so they load like learned ones.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from lmtui.models import bert
from lmtui.models.hf_config import MAX_VOCAB, bool_field, divisible, int_field, str_field
from lmtui.models.layers import activation, attend, attention_mask
from lmtui.models.weights import WeightTable

KIND = "encoder"
MODEL_TYPES = ("distilbert",)
HARD_CONTEXT = True  # learned absolute positions end there

EPS = 1e-12
HEAD_MODULES = ("vocab_transform.", "vocab_layer_norm.", "vocab_projector.")
WEIGHTS = WeightTable(
    prefix="distilbert.",
    outside=tuple(module + kind for module in HEAD_MODULES for kind in ("weight", "bias")),
    ignored=re.compile(r"embeddings\.position_ids$"),  # a buffer old saves kept
)


@dataclass(frozen=True)
class Config:
    vocab_size: int
    context_length: int
    hidden_size: int
    n_layers: int
    n_heads: int
    hidden_dim: int  # the feed-forward width
    activation: str
    tie_word_embeddings: bool
    mlm_head: bool = True  # `layout` sets it from the checkpoint's tensor names

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.n_heads

    @property
    def n_kv_heads(self) -> int:
        return self.n_heads

    @classmethod
    def from_hf(cls, config: dict[str, Any]) -> Config:
        hidden = int_field(config, "dim", "hidden_size")
        heads = int_field(config, "n_heads", "num_attention_heads")
        divisible(hidden, heads, "dim")
        act = str_field(config, "activation", default="gelu")
        activation(act)  # unknown names fail here, before any tensor is read
        return cls(
            vocab_size=int_field(config, "vocab_size", hi=MAX_VOCAB),
            context_length=int_field(config, "max_position_embeddings", default=512),
            hidden_size=hidden,
            n_layers=int_field(config, "n_layers", "num_hidden_layers"),
            n_heads=heads,
            hidden_dim=int_field(config, "hidden_dim", default=4 * hidden),
            activation=act,
            tie_word_embeddings=bool_field(config, "tie_word_embeddings", default=True),
        )


def layout(config: Config, tensors: Mapping[str, object]) -> Config:
    return replace(config, mlm_head=bert.holds(tensors, *HEAD_MODULES))


class Attention(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.n_heads, self.head_dim = config.n_heads, config.head_dim
        C = config.hidden_size
        self.q_lin, self.k_lin, self.v_lin = nn.Linear(C, C), nn.Linear(C, C), nn.Linear(C, C)
        self.out_lin = nn.Linear(C, C)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        B, T, C = x.shape
        q, k, v = (proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
                   for proj in (self.q_lin, self.k_lin, self.v_lin))  # (B, nh, T, hs)
        y = attend(q, k, v, mask, causal=False, scale=self.head_dim**-0.5)  # (B, nh, T, hs)
        return self.out_lin(y.transpose(1, 2).reshape(B, T, C))


class FFN(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.lin1 = nn.Linear(config.hidden_size, config.hidden_dim)
        self.lin2 = nn.Linear(config.hidden_dim, config.hidden_size)
        self.act = activation(config.activation)

    def forward(self, x: Tensor) -> Tensor:
        return self.lin2(self.act(self.lin1(x)))


class Block(nn.Module):
    """Post-LN, like BERT's layer: x = LN(x + attention(x)), then x = LN(x + ffn(x))."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.attention = Attention(config)
        self.sa_layer_norm = nn.LayerNorm(config.hidden_size, eps=EPS)
        self.ffn = FFN(config)
        self.output_layer_norm = nn.LayerNorm(config.hidden_size, eps=EPS)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        x = self.sa_layer_norm(self.attention(x, mask) + x)
        return self.output_layer_norm(self.ffn(x) + x)


class DistilBert(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.has_mlm_head = config.mlm_head
        C = config.hidden_size
        embeddings = nn.ModuleDict(dict(
            word_embeddings=nn.Embedding(config.vocab_size, C),
            position_embeddings=nn.Embedding(config.context_length, C),
            LayerNorm=nn.LayerNorm(C, eps=EPS),
        ))
        layers = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.distilbert = nn.ModuleDict(dict(embeddings=embeddings, transformer=nn.ModuleDict(dict(layer=layers))))
        if config.mlm_head:
            self.vocab_transform = nn.Linear(C, C)
            self.vocab_layer_norm = nn.LayerNorm(C, eps=EPS)
            self.vocab_projector = nn.Linear(C, config.vocab_size)
            self.act = activation(config.activation)
        tie = config.mlm_head and config.tie_word_embeddings
        self.tied = {"vocab_projector.weight": "distilbert.embeddings.word_embeddings.weight"} if tie else {}

    def encode(self, input_ids: Tensor, key_mask: Tensor | None = None,
               token_type_ids: Tensor | None = None) -> Tensor:
        """Last hidden states (B, T, C). key_mask (B, T): 1 for tokens, 0 for padding. DistilBERT has
        no segment embeddings: token_type_ids is accepted so every encoder is called alike, and unused."""
        T = input_ids.shape[1]
        emb = self.distilbert.embeddings
        positions = torch.arange(T, device=input_ids.device)[None]  # (1, T)
        x = emb.LayerNorm(emb.word_embeddings(input_ids) + emb.position_embeddings(positions))  # (B, T, C)
        mask = attention_mask(key_mask, T, T, causal=False)  # (B, 1, T, T) or None
        for block in self.distilbert.transformer.layer:
            x = block(x, mask)
        return x

    def forward(self, input_ids: Tensor, key_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None) -> Tensor:
        """Masked-LM logits (B, T, vocab)."""
        if not self.has_mlm_head:
            raise bert.no_mlm_head("DistilBert", "vocab_projector.")
        x = self.encode(input_ids, key_mask)
        x = self.vocab_layer_norm(self.act(self.vocab_transform(x)))  # (B, T, C)
        return self.vocab_projector(x)  # (B, T, vocab)


MODEL = DistilBert
