"""RoBERTa: BERT's encoder with positions counted from the padding id and its own MLM head.

The embeddings, layers and pooler are BERT's (`bert.Body`: the transformers classes are the same
code under other names). What differs: position ids are made from the input ids as fairseq did, so
padding sits at `pad_token_id` and real tokens count up from `pad_token_id + 1` (which is why
roberta-base's 514 positions hold 512 tokens), and the head `lm_head` always uses exact GELU,
whatever `hidden_act` says. Module names follow `RobertaForMaskedLM` (`roberta.encoder.layer.0...`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lmtui.errors import LmtuiError
from lmtui.models import bert
from lmtui.models.hf_config import int_field
from lmtui.models.weights import WeightTable

KIND = "encoder"
MODEL_TYPES = ("roberta",)
HARD_CONTEXT = True  # learned absolute positions end there

HEAD = "lm_head."
WEIGHTS = WeightTable(
    prefix="roberta.",
    outside=tuple(HEAD + name for name in (
        "bias", "decoder.weight", "decoder.bias", "dense.weight", "dense.bias", "layer_norm.weight",
        "layer_norm.bias")),
    ignored=re.compile(r"embeddings\.(position_ids|token_type_ids)$"),  # buffers of old saves
)


@dataclass(frozen=True)
class Config(bert.Config):
    pad_token_id: int = 1

    @classmethod
    def from_hf(cls, config: dict[str, Any]) -> Config:
        parsed = super().from_hf(config)
        pad = int_field(config, "pad_token_id", default=1, lo=0, hi=parsed.vocab_size - 1)
        if parsed.max_positions <= pad + 1:
            raise LmtuiError(f"config.json: max_position_embeddings ({parsed.max_positions}) leaves no "
                             f"positions after the padding id ({pad})")
        return replace(parsed, pad_token_id=pad, context_length=parsed.max_positions - pad - 1)


def layout(config: Config, tensors: Mapping[str, object]) -> Config:
    pooler = bert.holds(tensors, "pooler.", "roberta.pooler.")
    return replace(config, mlm_head=bert.holds(tensors, HEAD), pooler=pooler)


def position_ids(input_ids: Tensor, pad: int) -> Tensor:
    """(B, T) positions: padding gets `pad`, real tokens pad + 1, pad + 2, ... counting only real ones."""
    real = input_ids.ne(pad).long()  # (B, T)
    return real.cumsum(-1) * real + pad


class LMHead(nn.Module):
    """`lm_head`: dense, exact GELU, layer_norm, then the decoder tied to the word embeddings.

    As in BERT, `decoder.bias` is `bias` only while the weights are tied.
    """

    def __init__(self, config: Config) -> None:
        super().__init__()
        C = config.hidden_size
        self.dense = nn.Linear(C, C)
        self.layer_norm = nn.LayerNorm(C, eps=config.eps)
        self.decoder = nn.Linear(C, config.vocab_size)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.layer_norm(F.gelu(self.dense(x))))  # (B, T, vocab)


class Roberta(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.has_mlm_head = config.mlm_head
        self.roberta = bert.Body(config)
        self.lm_head = LMHead(config) if config.mlm_head else None
        tie = config.mlm_head and config.tie_word_embeddings
        self.tied = {HEAD + "decoder.weight": "roberta.embeddings.word_embeddings.weight",
                     HEAD + "decoder.bias": HEAD + "bias"} if tie else {}

    def encode(self, input_ids: Tensor, key_mask: Tensor | None = None,
               token_type_ids: Tensor | None = None) -> Tensor:
        """Last hidden states (B, T, C). key_mask (B, T): 1 for tokens, 0 for padding. Positions come
        from the ids, not the mask, as in transformers: pad with `pad_token_id` to keep them right."""
        positions = position_ids(input_ids, self.config.pad_token_id)  # (B, T)
        return self.roberta(input_ids, positions, key_mask, token_type_ids)

    def forward(self, input_ids: Tensor, key_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None) -> Tensor:
        """Masked-LM logits (B, T, vocab)."""
        if self.lm_head is None:
            raise bert.no_mlm_head("Roberta", HEAD)
        return self.lm_head(self.encode(input_ids, key_mask, token_type_ids))


MODEL = Roberta
