""""Give me logits for the next position": the one thing decoding strategies need from a model.

Strategies never see the model family; a stepper hides the KV cache, positions and (later) the
encoder. Rows are hypotheses: several samples, or beams, of one prompt.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor, nn


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
