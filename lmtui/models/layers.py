"""Layers every family shares: attention over masks, norms, activations and MLPs.

Only what is really identical across families lives here; projections stay in the family files so
each one reads top to bottom with the checkpoint's own tensor names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lmtui.errors import LmtuiError

Activation = Callable[[Tensor], Tensor]


def _gelu_tanh(x: Tensor) -> Tensor:
    return F.gelu(x, approximate="tanh")


def _quick_gelu(x: Tensor) -> Tensor:
    return x * torch.sigmoid(1.702 * x)


# The names checkpoints use in `activation_function` / `hidden_act`; the tanh family are one curve.
ACTIVATIONS: dict[str, Activation] = {
    "gelu": F.gelu,
    "gelu_new": _gelu_tanh,
    "gelu_fast": _gelu_tanh,
    "gelu_accurate": _gelu_tanh,
    "gelu_pytorch_tanh": _gelu_tanh,
    "gelu_python_tanh": _gelu_tanh,
    "quick_gelu": _quick_gelu,
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
    "tanh": torch.tanh,
}


def activation(name: str) -> Activation:
    """Look up an activation by its config name, with a message that lists the known ones."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        known = ", ".join(sorted(ACTIVATIONS))
        raise LmtuiError(f"unsupported activation {name!r} in config.json (supported: {known})") from None


class RMSNorm(nn.Module):
    """Root-mean-square norm (Llama, T5): no mean subtraction, no bias, computed in float32."""

    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


class GatedMLP(nn.Module):
    """SwiGLU-style MLP: down(act(gate(x)) * up(x)), as in Llama, Mistral and Qwen2."""

    def __init__(self, hidden: int, inner: int, act: str, bias: bool) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(hidden, inner, bias=bias)
        self.up_proj = nn.Linear(hidden, inner, bias=bias)
        self.down_proj = nn.Linear(inner, hidden, bias=bias)
        self.act = activation(act)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))


def attention_mask(
    key_mask: Tensor | None, q_len: int, k_len: int, causal: bool, window: int | None = None
) -> Tensor | None:
    """Which keys each query may see, as a (B, 1, T, S) bool mask, or None when SDPA needs none.

    `key_mask` (B, S) is 1 for real tokens and 0 for padding. Queries are the last T of the S
    positions (the first S - T are cached). None is returned only when the mask is implied:
    bidirectional without padding, or causal without padding with T == S (SDPA's `is_causal`)
    or T == 1 (a decode step sees everything cached) — so the fast kernels get their chance.
    A query that may see nothing (a padding row) is let see everything: its output is never
    read, and this keeps softmax free of NaN.
    """
    padded = key_mask is not None and not bool(key_mask.all())
    windowed = causal and window is not None and window < k_len
    if not padded and not windowed and (not causal or q_len in (1, k_len)):
        return None
    device = key_mask.device if key_mask is not None else None
    q_pos = torch.arange(k_len - q_len, k_len, device=device)[:, None]  # (T, 1)
    k_pos = torch.arange(k_len, device=device)[None, :]  # (1, S)
    allowed = torch.ones(q_len, k_len, dtype=torch.bool, device=device)  # (T, S)
    if causal:
        allowed = k_pos <= q_pos
        if window is not None:
            allowed = allowed & (k_pos > q_pos - window)
    allowed = allowed[None, None]  # (1, 1, T, S)
    if key_mask is not None:
        allowed = allowed & key_mask.bool()[:, None, None, :]  # (B, 1, T, S)
    return allowed | ~allowed.any(-1, keepdim=True)


@dataclass(frozen=True)
class AttentionCall:
    """What one attention call saw: enough to recompute any head's probabilities later, for the cost
    of keeping queries and keys (not layers x heads x T x S probabilities)."""

    q: Tensor  # (B, nh, T, hs), after rotary where the family has it
    k: Tensor  # (B, nkv, S, hs)
    mask: Tensor | None  # bool (B or 1, 1, T, S), True = may attend; or float (B or 1, nh, T, S) added to scores
    causal: bool  # with mask None: SDPA's is_causal applies
    scale: float


_recording: ContextVar[list[AttentionCall] | None] = ContextVar("attention_recording", default=None)


@contextmanager
def record_attention() -> Iterator[list[AttentionCall]]:
    """Collect every `attend` call made inside the block, in call order (per thread)."""
    calls: list[AttentionCall] = []
    token = _recording.set(calls)
    try:
        yield calls
    finally:
        _recording.reset(token)


def attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, causal: bool, scale: float) -> Tensor:
    """Scaled dot-product attention; grouped-query heads share keys and values without copies.

    q (B, nh, T, hs), k and v (B, nkv, S, hs) with nh a multiple of nkv -> (B, nh, T, hs).
    Inside `record_attention` the call is also recorded, so inspection keeps the fast kernels.
    """
    calls = _recording.get()
    if calls is not None:
        calls.append(AttentionCall(q, k, mask, causal, scale))
    return F.scaled_dot_product_attention(
        q,
        k,
        v,
        attn_mask=mask,
        is_causal=causal and mask is None and q.shape[-2] > 1,
        scale=scale,
        enable_gqa=q.shape[1] != k.shape[1],
    )


def attention_backend(device: torch.device, dtype: torch.dtype) -> str:
    """Name the kernel SDPA will pick for unmasked causal attention on this device and dtype."""
    if device.type == "cuda":
        half = dtype in (torch.float16, torch.bfloat16)
        if half and torch.backends.cuda.flash_sdp_enabled():
            return "flash (sdpa)"
        return "memory-efficient (sdpa)"
    return f"sdpa ({device.type})"


def default_positions(key_mask: Tensor | None, q_len: int, past: int, device: torch.device) -> Tensor:
    """Position ids (B or 1, T) of the last T tokens when the caller gives none.

    With a key mask, a token's position is the count of real tokens before it, so left padding
    does not shift positions (what transformers.generate passes as `position_ids`).
    """
    if key_mask is None:
        return past + torch.arange(q_len, device=device)[None]  # (1, T)
    positions = key_mask.long().cumsum(-1) - 1  # (B, S)
    return positions.clamp(min=0)[:, -q_len:]  # (B, T)
