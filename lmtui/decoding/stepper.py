""""Give me logits for the next position": the one thing decoding strategies need from a model.

Strategies never see the model family; a stepper hides the KV cache, positions and the encoder.
Rows are hypotheses: several samples, or beams, of one prompt.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor, nn

from lmtui.models.kv_cache import CrossCache, KVCache


class Stepper(Protocol):
    def prefill(self, rows: int) -> Tensor:
        """Logits (rows, V) for the first new position; the prompt is computed once and shared."""
        ...

    def step(self, tokens: Tensor) -> Tensor:
        """Append tokens (rows,) and return logits (rows, V) for the position after them."""
        ...

    def reorder(self, rows: Tensor) -> None:
        """Keep rows (rows,) in this order from now on (beam search's surviving parents)."""
        ...


class DecoderStepper:
    """A decoder-only model over one prompt, with a KV cache sized for the whole run."""

    def __init__(self, model: nn.Module, prompt_ids: list[int], max_new_tokens: int) -> None:
        self.model = model
        self.prompt = torch.tensor([prompt_ids], device=model.lm_head.weight.device)  # (1, T)
        self.max_len = len(prompt_ids) + max_new_tokens
        self.cache = model.new_cache(batch=1, max_len=self.max_len)

    @torch.inference_mode()
    def prefill(self, rows: int) -> Tensor:
        logits = self.model(self.prompt, cache=self.cache)[:, -1]  # (1, V)
        if rows > 1:
            self.cache = self.cache.expanded(rows)
        return logits.float().expand(rows, -1)

    @torch.inference_mode()
    def step(self, tokens: Tensor) -> Tensor:
        return self.model(tokens[:, None], cache=self.cache)[:, -1].float()  # (rows, V)

    @torch.inference_mode()  # the cache was written under inference mode; in-place updates must be too
    def reorder(self, rows: Tensor) -> None:
        self.cache.reorder(rows)


class EncoderDecoderStepper:
    """An encoder-decoder over one source: the encoder runs once, cross-attention keys and values are
    computed once and shared by every hypothesis, and the decoder starts from its start token.

    The model provides `encode(ids) -> states`, `cross_cache(states) -> CrossCache`,
    `decode(ids, cross, cache=...) -> logits` and `new_cache(batch, max_len)`.
    """

    def __init__(self, model: nn.Module, source_ids: list[int], start_id: int, max_new_tokens: int) -> None:
        self.model = model
        device = next(model.parameters()).device
        self.source = torch.tensor([source_ids], device=device)  # (1, S)
        self.start = torch.tensor([start_id], device=device)
        self.max_len = 1 + max_new_tokens
        self.cache: KVCache | None = None  # (rows, ...) once prefill knows how many rows
        self.cross: CrossCache | None = None

    @torch.inference_mode()
    def prefill(self, rows: int) -> Tensor:
        states = self.model.encode(self.source)  # (1, S, C)
        self.cross = self.model.cross_cache(states).expanded(rows)
        self.cache = self.model.new_cache(batch=rows, max_len=self.max_len)
        return self.step(self.start.expand(rows))

    @torch.inference_mode()
    def step(self, tokens: Tensor) -> Tensor:
        return self.model.decode(tokens[:, None], self.cross, cache=self.cache)[:, -1].float()  # (rows, V)

    @torch.inference_mode()
    def reorder(self, rows: Tensor) -> None:
        self.cache.reorder(rows)  # the cross-attention cache is the same for every row
