"""BERT: word + position + token-type embeddings, post-LayerNorm encoder layers, an MLM head.

Module names follow `BertForMaskedLM` checkpoints (`bert.encoder.layer.0.attention.self.query`,
`cls.predictions.transform.dense`, ...). A bare `BertModel` save has no `bert.` prefix and a pooler
instead of the head, and `BertForPreTraining` (the original bert-base checkpoints) has both. Which
of them a checkpoint holds is not in config.json, only in its tensor names, so `layout` reads it
there and the model is built with exactly those parts. RoBERTa reuses the body here unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from lmtui.errors import LmtuiError
from lmtui.models.hf_config import MAX_VOCAB, bool_field, divisible, float_field, int_field, str_field
from lmtui.models.layers import activation, attend, attention_mask
from lmtui.models.weights import WeightTable

KIND = "encoder"
MODEL_TYPES = ("bert",)
HARD_CONTEXT = True  # learned absolute positions end there

HEAD = "cls.predictions."
HEAD_TENSORS = tuple(HEAD + name for name in (
    "bias", "decoder.weight", "decoder.bias", "transform.dense.weight", "transform.dense.bias",
    "transform.LayerNorm.weight", "transform.LayerNorm.bias"))
WEIGHTS = WeightTable(
    prefix="bert.",
    outside=HEAD_TENSORS,
    # position/token-type id buffers of old saves, and BertForPreTraining's next-sentence head
    ignored=re.compile(r"embeddings\.(position_ids|token_type_ids)$|^cls\.seq_relationship\."),
)


@dataclass(frozen=True)
class Config:
    vocab_size: int
    context_length: int  # tokens one text may have
    max_positions: int  # rows of the position table (RoBERTa spends pad_token_id + 1 of them)
    hidden_size: int
    n_layers: int
    n_heads: int
    intermediate_size: int
    hidden_act: str
    eps: float
    type_vocab_size: int
    tie_word_embeddings: bool
    mlm_head: bool = True  # `layout` sets both from the checkpoint's tensor names
    pooler: bool = False

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.n_heads

    @property
    def n_kv_heads(self) -> int:
        return self.n_heads

    @classmethod
    def from_hf(cls, config: dict[str, Any]) -> Config:
        if config.get("is_decoder") or config.get("add_cross_attention"):
            raise LmtuiError("config.json: is_decoder / add_cross_attention make this a causal decoder "
                             "(BertLMHeadModel), not a bidirectional encoder; lmtui runs the encoder only")
        hidden = int_field(config, "hidden_size")
        heads = int_field(config, "num_attention_heads")
        divisible(hidden, heads, "hidden_size")
        act = str_field(config, "hidden_act", default="gelu")
        activation(act)  # unknown names fail here, before any tensor is read
        positions = int_field(config, "max_position_embeddings", default=512)
        return cls(
            vocab_size=int_field(config, "vocab_size", hi=MAX_VOCAB),
            context_length=positions,
            max_positions=positions,
            hidden_size=hidden,
            n_layers=int_field(config, "num_hidden_layers"),
            n_heads=heads,
            intermediate_size=int_field(config, "intermediate_size"),
            hidden_act=act,
            eps=float_field(config, "layer_norm_eps", default=1e-12),
            type_vocab_size=int_field(config, "type_vocab_size", default=2),
            tie_word_embeddings=bool_field(config, "tie_word_embeddings", default=True),
        )


def holds(tensors: Mapping[str, object], *prefixes: str) -> bool:
    """Whether any checkpoint tensor name starts with one of `prefixes`."""
    return any(name.startswith(prefixes) for name in tensors)


def layout(config: Config, tensors: Mapping[str, object]) -> Config:
    return replace(config, mlm_head=holds(tensors, HEAD), pooler=holds(tensors, "pooler.", "bert.pooler."))


def no_mlm_head(family: str, head: str) -> LmtuiError:
    return LmtuiError(f"this {family} checkpoint has no masked-language-model head ({head}*, e.g. a bare "
                      f"{family}Model save): it can be inspected but cannot predict masked tokens")


class AddNorm(nn.Module):
    """How every BERT sublayer ends (`attention.output`, `output`): project, add the residual, normalise."""

    def __init__(self, inner: int, hidden: int, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(inner, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: Tensor, residual: Tensor) -> Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class Attention(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.n_heads, self.head_dim = config.n_heads, config.head_dim
        C = config.hidden_size
        self.self = nn.ModuleDict(dict(query=nn.Linear(C, C), key=nn.Linear(C, C), value=nn.Linear(C, C)))
        self.output = AddNorm(C, C, config.eps)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        B, T, C = x.shape
        q, k, v = (proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
                   for proj in (self.self.query, self.self.key, self.self.value))  # (B, nh, T, hs)
        y = attend(q, k, v, mask, causal=False, scale=self.head_dim**-0.5)  # (B, nh, T, hs)
        return self.output(y.transpose(1, 2).reshape(B, T, C), x)


class Layer(nn.Module):
    """Post-LN: x = LN(x + attention(x)), then x = LN(x + dense(act(dense(x))))."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.attention = Attention(config)
        self.intermediate = nn.ModuleDict(dict(dense=nn.Linear(config.hidden_size, config.intermediate_size)))
        self.output = AddNorm(config.intermediate_size, config.hidden_size, config.eps)
        self.act = activation(config.hidden_act)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        x = self.attention(x, mask)
        return self.output(self.act(self.intermediate.dense(x)), x)


class Embeddings(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embeddings = nn.Embedding(config.max_positions, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.eps)

    def forward(self, input_ids: Tensor, positions: Tensor, token_type_ids: Tensor | None) -> Tensor:
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)  # one segment, as transformers' buffer gives
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)  # (B, T, C)
        return self.LayerNorm(x + self.position_embeddings(positions))


class Body(nn.Module):
    """`BertModel` (and `RobertaModel`): embeddings, the encoder layers and, when saved, the pooler."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.embeddings = Embeddings(config)
        self.encoder = nn.ModuleDict(dict(layer=nn.ModuleList(Layer(config) for _ in range(config.n_layers))))
        pooler = nn.ModuleDict(dict(dense=nn.Linear(config.hidden_size, config.hidden_size)))
        self.pooler = pooler if config.pooler else None

    def forward(self, input_ids: Tensor, positions: Tensor, key_mask: Tensor | None,
                token_type_ids: Tensor | None) -> Tensor:
        T = input_ids.shape[1]
        mask = attention_mask(key_mask, T, T, causal=False)  # (B, 1, T, T) or None
        x = self.embeddings(input_ids, positions, token_type_ids)  # (B, T, C)
        for layer in self.encoder.layer:
            x = layer(x, mask)
        return x

    def pool(self, hidden: Tensor) -> Tensor:
        """The pooler's sentence vector (B, C) from the first token's state, for checkpoints that saved one."""
        if self.pooler is None:
            raise LmtuiError("this checkpoint has no pooler (pooler.dense.*)")
        return torch.tanh(self.pooler.dense(hidden[:, 0]))


class MaskedLMHead(nn.Module):
    """`cls.predictions`: dense, activation, LayerNorm, then the decoder tied to the word embeddings.

    transformers ties `decoder.bias` to `bias` only along with the weights; with
    tie_word_embeddings false both are saved and only `decoder.bias` is used, so the same here.
    """

    def __init__(self, config: Config) -> None:
        super().__init__()
        C = config.hidden_size
        self.transform = nn.ModuleDict(dict(dense=nn.Linear(C, C), LayerNorm=nn.LayerNorm(C, eps=config.eps)))
        self.decoder = nn.Linear(C, config.vocab_size)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.act = activation(config.hidden_act)

    def forward(self, x: Tensor) -> Tensor:
        x = self.transform.LayerNorm(self.act(self.transform.dense(x)))
        return self.decoder(x)  # (B, T, vocab)


class Bert(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.has_mlm_head = config.mlm_head
        self.bert = Body(config)
        self.cls = nn.ModuleDict(dict(predictions=MaskedLMHead(config))) if config.mlm_head else None
        tie = config.mlm_head and config.tie_word_embeddings
        self.tied = {HEAD + "decoder.weight": "bert.embeddings.word_embeddings.weight",
                     HEAD + "decoder.bias": HEAD + "bias"} if tie else {}

    def encode(self, input_ids: Tensor, key_mask: Tensor | None = None,
               token_type_ids: Tensor | None = None) -> Tensor:
        """Last hidden states (B, T, C). key_mask (B, T): 1 for tokens, 0 for padding; token_type_ids
        (B, T): the segment of each token (default 0). Positions count slots from 0, padding included,
        as transformers counts them when it is given no position ids."""
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)[None]  # (1, T)
        return self.bert(input_ids, positions, key_mask, token_type_ids)

    def forward(self, input_ids: Tensor, key_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None) -> Tensor:
        """Masked-LM logits (B, T, vocab)."""
        if self.cls is None:
            raise no_mlm_head("Bert", HEAD)
        return self.cls.predictions(self.encode(input_ids, key_mask, token_type_ids))


MODEL = Bert
