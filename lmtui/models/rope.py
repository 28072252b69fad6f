"""Rotary position embeddings as Llama-family checkpoints use them (transformers' `rotate_half` layout).

Angles are computed in float32 from `inv_freq` whatever the activations' dtype, and only cos/sin
are cast down: half-precision angles drift by whole turns at long positions. Each scaling type
reproduces transformers' formula step by step, because checkpoints were trained with exactly
those frequencies and small differences show up in the logits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from lmtui.errors import LmtuiError
from lmtui.models.hf_config import bool_field, float_field, int_field, str_field

SUPPORTED = ("default", "linear", "dynamic", "llama3", "yarn")


@dataclass(frozen=True)
class RopeConfig:
    rope_type: str
    theta: float
    dim: int  # channels rotated per head: int(head_dim * partial_rotary_factor)
    max_positions: int  # max_position_embeddings: where dynamic NTK starts stretching
    factor: float = 1.0
    original_max_positions: int = 0  # the pretraining length (llama3, yarn)
    low_freq_factor: float = 1.0  # llama3
    high_freq_factor: float = 4.0  # llama3
    beta_fast: float = 32.0  # yarn
    beta_slow: float = 1.0  # yarn
    truncate: bool = True  # yarn
    attention_scaling: float = 1.0  # multiplies cos and sin (yarn's mscale)

    @classmethod
    def from_hf(cls, config: dict[str, Any], head_dim: int, max_positions: int) -> RopeConfig:
        """Read either layout: v4 (`rope_theta` + `rope_scaling`) or v5 (`rope_parameters`).
        `max_positions` is the family's reading of max_position_embeddings (defaults differ)."""
        params = rope_parameters(config)
        rope_type = str_field(params, "rope_type", "type", default="default")
        if rope_type not in SUPPORTED:
            raise LmtuiError(f"config.json: unsupported rope type {rope_type!r} (supported: {', '.join(SUPPORTED)})")
        theta = _positive(params, "rope_theta", 10000.0)
        if theta <= 1:
            raise LmtuiError(f"config.json: rope_theta must be above 1, not {theta}")
        partial = _positive(params, "partial_rotary_factor", 1.0)
        dim = int(head_dim * partial)  # an odd dim rotates dim + 1 channels, as in transformers
        if dim < 1 or dim + dim % 2 > head_dim or (rope_type == "dynamic" and dim <= 2):
            raise LmtuiError(f"config.json: head_dim {head_dim} with partial_rotary_factor {partial} cannot rotate")
        rope = cls(rope_type, theta, dim, max_positions)
        if rope_type == "default":
            return rope
        original = int_field(params, "original_max_position_embeddings", default=rope.max_positions)
        factor = _positive(params, "factor", rope.max_positions / original if rope_type == "yarn" else None)
        rope = replace(rope, factor=factor, original_max_positions=original)
        if rope_type == "llama3":
            low, high = _positive(params, "low_freq_factor", None), _positive(params, "high_freq_factor", None)
            return replace(rope, low_freq_factor=low, high_freq_factor=high)
        return _yarn_config(rope, params) if rope_type == "yarn" else rope


def rope_parameters(config: dict[str, Any]) -> dict[str, Any]:
    """One flat dict for both layouts. As in transformers: `rope_scaling` wins over `rope_parameters`,
    a value inside the dict over a top-level `rope_theta` / `partial_rotary_factor`, and a top-level
    `original_max_position_embeddings` (Phi-3 style) over the one inside."""
    params = config.get("rope_scaling") or config.get("rope_parameters") or {}
    if not isinstance(params, dict):
        raise LmtuiError("config.json: rope_scaling / rope_parameters must be an object")
    merged = {name: config.get(name) for name in ("rope_theta", "partial_rotary_factor")}
    merged.update({name: value for name, value in params.items() if value is not None})
    if config.get("original_max_position_embeddings") is not None:
        merged["original_max_position_embeddings"] = config["original_max_position_embeddings"]
    return merged


def _positive(params: dict[str, Any], name: str, default: float | None) -> float:
    """A finite number above 0 (required when `default` is None)."""
    value = float_field(params, name) if default is None else float_field(params, name, default=default)
    if not 0 < value < math.inf:
        raise LmtuiError(f"config.json: rope {name} must be a positive number, not {value!r}")
    return value


def _yarn_config(rope: RopeConfig, params: dict[str, Any]) -> RopeConfig:
    """YaRN's attention factor depends on the config alone, so it is settled here, once."""

    def mscale(scale: float, m: float = 1.0) -> float:
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

    if params.get("attention_factor") is not None:
        attention = _positive(params, "attention_factor", None)
    elif params.get("mscale") and params.get("mscale_all_dim"):
        m, m_all = _positive(params, "mscale", None), _positive(params, "mscale_all_dim", None)
        attention = mscale(rope.factor, m) / mscale(rope.factor, m_all)
    else:
        attention = mscale(rope.factor)
    return replace(
        rope,
        beta_fast=_positive(params, "beta_fast", 32.0),
        beta_slow=_positive(params, "beta_slow", 1.0),
        truncate=bool_field(params, "truncate", default=True),
        attention_scaling=attention,
    )


def initial_inv_freq(rope: RopeConfig, device: torch.device) -> Tensor:
    """(rot/2,) float32 inverse frequencies; dynamic NTK starts from its unstretched length."""
    exponents = torch.arange(0, rope.dim, 2, dtype=torch.int64, device=device).float() / rope.dim
    if rope.rope_type == "dynamic":
        ratio = rope.factor * rope.max_positions / rope.max_positions - (rope.factor - 1)
        return 1.0 / ((rope.theta * ratio ** (rope.dim / (rope.dim - 2))) ** exponents)
    freq = 1.0 / (rope.theta**exponents)
    if rope.rope_type == "linear":
        return freq / rope.factor
    if rope.rope_type == "llama3":
        return _llama3(rope, freq)
    if rope.rope_type == "yarn":
        return _yarn(rope, exponents)
    return freq


def _llama3(rope: RopeConfig, freq: Tensor) -> Tensor:
    """Llama 3.1: long wavelengths slowed by `factor`, short ones kept, a smooth ramp between."""
    low_wavelen = rope.original_max_positions / rope.low_freq_factor
    high_wavelen = rope.original_max_positions / rope.high_freq_factor
    wavelen = 2 * math.pi / freq
    scaled = torch.where(wavelen > low_wavelen, freq / rope.factor, freq)
    smooth = (rope.original_max_positions / wavelen - rope.low_freq_factor) / (
        rope.high_freq_factor - rope.low_freq_factor
    )
    smoothed = (1 - smooth) * scaled / rope.factor + smooth * scaled
    medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
    return torch.where(medium, smoothed, scaled)


def _yarn(rope: RopeConfig, exponents: Tensor) -> Tensor:
    """YaRN: interpolate the slow channels, extrapolate the fast ones, ramp linearly between."""

    def correction_dim(rotations: float) -> float:
        return rope.dim * math.log(rope.original_max_positions / (rotations * 2 * math.pi)) / (2 * math.log(rope.theta))

    low, high = correction_dim(rope.beta_fast), correction_dim(rope.beta_slow)
    if rope.truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, rope.dim - 1)
    if low == high:
        high += 0.001  # as transformers: keeps the ramp finite
    ramp = (torch.arange(rope.dim // 2, dtype=torch.float32, device=exponents.device) - low) / (high - low)
    extrapolate = 1 - ramp.clamp(0, 1)
    pos_freqs = rope.theta**exponents
    return 1.0 / (rope.factor * pos_freqs) * (1 - extrapolate) + 1.0 / pos_freqs * extrapolate


def _dynamic_ntk(rope: RopeConfig, positions: Tensor, base_freq: Tensor) -> Tensor:
    """Dynamic NTK: past `max_positions`, a larger base chosen from the longest position in this call.

    Computed in tensors (no host sync) with transformers' float32 arithmetic, so both agree.
    """
    seq_len = positions.max() + 1
    ratio = rope.factor * seq_len / rope.max_positions - (rope.factor - 1)
    base = rope.theta * ratio ** (rope.dim / (rope.dim - 2))
    exponents = torch.arange(0, rope.dim, 2, dtype=torch.int64, device=positions.device).float() / rope.dim
    return torch.where(seq_len > rope.max_positions, 1.0 / (base**exponents), base_freq)


class RotaryEmbedding(nn.Module):
    """cos/sin tables for a batch of positions, computed once per forward and shared by all layers."""

    def __init__(self, rope: RopeConfig) -> None:
        super().__init__()
        self.rope = rope
        # The model is built on the meta device and this buffer is not in the checkpoint, so it
        # is made on the CPU explicitly; `model.to(device)` moves it, and it stays float32.
        self.register_buffer("inv_freq", initial_inv_freq(rope, torch.device("cpu")), persistent=False)

    def forward(self, positions: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """cos and sin (B, T, rot) in `dtype` for positions (B, T)."""
        freq = self.inv_freq.float()
        if self.rope.rope_type == "dynamic":
            freq = _dynamic_ntk(self.rope, positions, freq)
        angles = positions[..., None].float() * freq  # (B, T, rot/2)
        angles = torch.cat((angles, angles), dim=-1)  # (B, T, rot)
        scale = self.rope.attention_scaling
        return (angles.cos() * scale).to(dtype), (angles.sin() * scale).to(dtype)


def rotate_half(x: Tensor) -> Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate x (B, nh, T, hs) by cos, sin (B, T, rot): the first `rot` channels of each head turn
    (all of them unless partial_rotary_factor < 1), the rest pass through."""
    cos, sin = cos[:, None], sin[:, None]  # (B, 1, T, rot)
    rot = cos.shape[-1]
    if rot == x.shape[-1]:
        return x * cos + rotate_half(x) * sin
    x_rot, x_pass = x[..., :rot], x[..., rot:]
    return torch.cat((x_rot * cos + rotate_half(x_rot) * sin, x_pass), dim=-1)
