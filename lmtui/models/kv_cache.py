"""A preallocated key/value cache written in place, so decoding never reallocates or copies history."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class KVCache:
    """Keys and values of every layer for up to `max_len` positions.

    Each layer calls `update(layer, k, v)` with the new positions and gets back views of everything
    cached so far; the model calls `advance(T)` once after all layers have written. Beam search
    reorders batch rows in place with `reorder`.
    """

    def __init__(
        self,
        layers: int,
        batch: int,
        kv_heads: int,
        max_len: int,
        head_dim: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        shape = (layers, batch, kv_heads, max_len, head_dim)  # (L, B, nkv, S_max, hs)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.length = 0

    @classmethod
    def for_model(cls, config: Any, batch: int, max_len: int, like: Tensor) -> KVCache:
        """A cache shaped for a decoder config (n_layers, n_kv_heads, head_dim), typed like `like`."""
        return cls(config.n_layers, batch, config.n_kv_heads, max_len, config.head_dim, like.dtype, like.device)

    @property
    def max_len(self) -> int:
        return self.k.shape[3]

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Write k, v (B, nkv, T, hs) after the cached positions; return (B, nkv, length + T, hs) views."""
        end = self.length + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"KV cache holds {self.max_len} positions; {end} were asked for")
        self.k[layer, :, :, self.length : end] = k
        self.v[layer, :, :, self.length : end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def advance(self, steps: int) -> None:
        self.length += steps

    def expanded(self, rows: int) -> KVCache:
        """A cache of `rows` copies of this one-row cache: a prompt computed once, shared by every
        hypothesis (beams, samples)."""
        layers, _, kv_heads, max_len, head_dim = self.k.shape
        wide = KVCache(layers, rows, kv_heads, max_len, head_dim, self.k.dtype, self.k.device)
        wide.k[:, :, :, : self.length] = self.k[:, :1, :, : self.length]
        wide.v[:, :, :, : self.length] = self.v[:, :1, :, : self.length]
        wide.length = self.length
        return wide

    def reorder(self, rows: Tensor) -> None:
        """Keep batch rows `rows` (B,) in this order, e.g. the parents of the surviving beams."""
        n = self.length
        self.k[:, :, :, :n] = self.k[:, :, :, :n].index_select(1, rows)
        self.v[:, :, :, :n] = self.v[:, :, :, :n].index_select(1, rows)


class CrossCache:
    """Cross-attention keys and values of every decoder layer, computed once from the encoder output.

    All hypotheses of one source share them: `expanded(rows)` makes views, not copies, and beam
    search never reorders them (every beam attends to the same source).
    """

    def __init__(self, keys: list[Tensor], values: list[Tensor]) -> None:
        self.keys = keys  # per layer (B, nkv, S, hs)
        self.values = values

    def expanded(self, rows: int) -> CrossCache:
        """Views of a one-source cache for `rows` hypotheses: (1, nkv, S, hs) -> (rows, nkv, S, hs)."""
        return CrossCache(
            [k.expand(rows, -1, -1, -1) for k in self.keys], [v.expand(rows, -1, -1, -1) for v in self.values]
        )
