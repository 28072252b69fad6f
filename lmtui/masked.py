"""Fill-mask: what an encoder's masked-LM head predicts behind each mask token in a text.

Computed as transformers' fill-mask pipeline computes it: the text is encoded with its special
tokens, the model reads it once, and every mask token's logits go through a softmax over the whole
output vocabulary; the top k are kept. Unlike the pipeline, a text may hold several masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lmtui.errors import InvalidOption, LmtuiError
from lmtui.tokenizer import SpecialToken, Tokenizer


@dataclass(frozen=True)
class Candidate:
    id: int
    piece: str  # the vocabulary entry ("##ing", "Ġcat"); "" for an id past the tokenizer's vocabulary
    text: str  # what the token decodes to on its own (the pipeline's token_str)
    prob: float


@dataclass(frozen=True)
class MaskPrediction:
    position: int  # index of the mask among the text's tokens, special tokens included
    candidates: list[Candidate]


def fill_mask(model: nn.Module, tokenizer: Tokenizer, text: str, top_k: int = 5) -> list[MaskPrediction]:
    """The top_k candidates, most likely first, for every mask token in `text`, in text order."""
    if top_k < 1:
        raise InvalidOption(f"top_k must be at least 1, not {top_k}")
    mask = mask_token(model, tokenizer)
    ids = list(tokenizer.encode(text).ids)
    positions = [i for i, token in enumerate(ids) if token == mask.id]
    if not positions:
        raise InvalidOption(f"the text has no mask token: type {mask.text} where a token should be predicted")
    if len(ids) > model.config.context_length:
        raise InvalidOption(f"the text is {len(ids)} tokens; this model reads at most {model.config.context_length}")
    device = next(model.parameters()).device
    with torch.inference_mode():
        logits = model(torch.tensor([ids], device=device))[0, positions]  # (masks, vocab)
        probs, best = logits.float().softmax(-1).topk(min(top_k, logits.shape[-1]))  # (masks, k)
    return [
        MaskPrediction(position, [_candidate(tokenizer, i, p) for i, p in zip(row_ids.tolist(), row_probs.tolist())])
        for position, row_ids, row_probs in zip(positions, best, probs)
    ]


def mask_token(model: nn.Module, tokenizer: Tokenizer) -> SpecialToken:
    if not getattr(model, "has_mlm_head", False):
        lacks = "has none (a bare encoder save)" if hasattr(model, "has_mlm_head") else "is not an encoder"
        raise LmtuiError("fill-mask needs an encoder with a masked-language-model head (BERT, RoBERTa, "
                         f"DistilBERT); this model {lacks}")
    if tokenizer.special.mask is None:
        raise LmtuiError("the tokenizer has no mask token (mask_token in tokenizer_config.json), so no text "
                         "can ask for a masked prediction")
    return tokenizer.special.mask


def _candidate(tokenizer: Tokenizer, id: int, prob: float) -> Candidate:
    return Candidate(id, tokenizer.id_to_piece(id) or "", tokenizer.decode([id]), prob)
