"""Marian (opus-mt): BART's post-LN layers around fixed sinusoidal positions and no embedding LayerNorm.

The layers and the encode/decode loop are BART's (imported from bart.py: transformers' Marian
classes are copies of BART's). What differs is the embedding side:

- positions are a sinusoid table, sines in the first half of each vector and cosines in the second
  (not interleaved). transformers computes it at init and MarianMTModel never saves it; older
  checkpoints and MarianModel saves do store it, and those copies are skipped here: the table is
  computed, in float64 rounded to float32 as transformers computes it.
- source and target may have separate vocabularies (`share_encoder_decoder_embeddings: false`,
  `decoder_vocab_size`); then there is no `model.shared`, and a tied `lm_head` is the decoder's
  embeddings. With a shared vocabulary, tying makes all three `model.shared`, as in BART.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from lmtui.models import bart
from lmtui.models.bart import DecoderLayer, EncoderDecoder, EncoderLayer
from lmtui.models.hf_config import MAX_VOCAB, bool_field, int_field
from lmtui.models.weights import WeightTable

KIND = "encoder-decoder"
MODEL_TYPES = ("marian",)
HARD_CONTEXT = True  # the sinusoid table ends there

WEIGHTS = WeightTable(
    prefix="model.",
    outside=("lm_head.weight", "final_logits_bias"),
    ignored=re.compile(r"\bembed_positions\.weight$"),  # the sinusoid table, recomputed (see above)
)

layout = bart.layout  # the loader's hook: whether the checkpoint has a final_logits_bias


@dataclass(frozen=True, kw_only=True)
class Config(bart.Config):
    """BART's fields (`vocab_size` is the source vocabulary) plus the target side's."""

    decoder_vocab_size: int
    share_embeddings: bool  # share_encoder_decoder_embeddings

    @property
    def target_vocab_size(self) -> int:
        """Rows of the decoder's logits: transformers sizes lm_head by the shared vocabulary when shared."""
        return self.vocab_size if self.share_embeddings else self.decoder_vocab_size

    @classmethod
    def from_hf(cls, config: dict[str, Any]) -> Config:
        common = asdict(bart.Config.from_hf(config))
        return cls(
            **common,
            decoder_vocab_size=int_field(config, "decoder_vocab_size", default=common["vocab_size"], hi=MAX_VOCAB),
            share_embeddings=bool_field(config, "share_encoder_decoder_embeddings", default=True),
        )


def sinusoids(n_positions: int, dim: int) -> Tensor:
    """(n_positions, dim) float32: sin(pos / 10000^(2i/dim)) in the first ceil(dim/2) columns, cos in the rest.

    Built on the CPU explicitly: the model is built on `meta`, and this table is not in the checkpoint.
    """
    cpu = torch.device("cpu")
    positions = torch.arange(n_positions, dtype=torch.float64, device=cpu)[:, None]  # (P, 1)
    pairs = torch.arange(dim, dtype=torch.float64, device=cpu) // 2  # (dim,) 0, 0, 1, 1, ...
    angles = positions / torch.pow(10000.0, 2 * pairs / dim)  # (P, dim)
    return torch.cat([angles[:, 0::2].sin(), angles[:, 1::2].cos()], dim=1).float()


class Stack(nn.Module):
    """One side, encoder or decoder: scaled token embeddings plus the shared sinusoid table, then the layers."""

    def __init__(self, config: Config, vocab_size: int, table: Tensor, layers: list[nn.Module]) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(layers)
        self.register_buffer("positions", table, persistent=False)
        self.embed_scale = config.embed_scale

    def embed(self, ids: Tensor, past: int) -> Tensor:
        """(B, T, C) inputs for ids (B, T) at positions past, past + 1, ... (padding is not skipped)."""
        x = self.embed_tokens(ids) * self.embed_scale  # (B, T, C)
        return x + self.positions[past : past + ids.shape[1]].to(x.dtype)


class Marian(EncoderDecoder):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        table = sinusoids(config.context_length, config.hidden_size)  # one table, both sides
        encoder_layers = [EncoderLayer(config) for _ in range(config.n_encoder_layers)]
        decoder_layers = [DecoderLayer(config, layer) for layer in range(config.n_layers)]
        parts: dict[str, nn.Module] = dict(
            encoder=Stack(config, config.vocab_size, table, encoder_layers),
            decoder=Stack(config, config.decoder_vocab_size, table, decoder_layers),
        )
        if config.share_embeddings:
            parts["shared"] = nn.Embedding(config.vocab_size, config.hidden_size)
        self.model = nn.ModuleDict(parts)
        self.lm_head = nn.Linear(config.hidden_size, config.target_vocab_size, bias=False)
        bias = torch.zeros(1, config.target_vocab_size) if config.final_logits_bias else None
        self.register_buffer("final_logits_bias", bias)
        self.tied = _tied(config)


def _tied(config: Config) -> dict[str, str]:
    """transformers' ties: none unless tie_word_embeddings; then all to `shared`, or lm_head to the decoder's."""
    if not config.tie_word_embeddings:
        return {}
    if not config.share_embeddings:
        return {"lm_head.weight": "model.decoder.embed_tokens.weight"}
    tied = ("model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight", "lm_head.weight")
    return {name: "model.shared.weight" for name in tied}


MODEL = Marian
