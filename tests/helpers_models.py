"""Shared by the model-family tests: random transformers checkpoints and a logits comparison."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from lmtui.checkpoint import open_checkpoint
from lmtui.models.loading import load_model

TOL = 1e-4  # max |logits diff| in float32


def randomize(model: nn.Module, std: float = 0.3, seed: int = 0) -> nn.Module:
    """Draw every parameter at random, norm scales around 1.

    transformers initialises tiny weights and zero biases, so attention is nearly uniform and a
    wrong rotation, mask or dropped bias could hide under the tolerance; these weights cannot hide it.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            mean = 1.0 if "norm" in name else 0.0
            parameter.copy_(mean + std * torch.randn(parameter.shape, generator=generator))
    return model.eval()


def save_hf_model(model: nn.Module, folder: Path) -> Path:
    """Save as transformers saves (config.json + model.safetensors) and return the folder."""
    model.save_pretrained(folder)
    return folder


def load_ours(folder: Path) -> nn.Module:
    return load_model(open_checkpoint(folder), None, torch.device("cpu"))


def token_ids(batch: int, length: int, vocab: int, seed: int = 1) -> Tensor:
    return torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


def left_padding_mask(lengths: list[int], total: int) -> Tensor:
    """(B, total) key mask, 1 for the last `lengths[b]` slots of row b."""
    mask = torch.zeros(len(lengths), total, dtype=torch.long)
    for row, length in enumerate(lengths):
        mask[row, total - length :] = 1
    return mask


def hf_positions(mask: Tensor) -> Tensor:
    """The position_ids transformers.generate passes for a left-padded batch."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def assert_logits_match(ours: Tensor, theirs: Tensor, tol: float = TOL) -> None:
    assert ours.shape == theirs.shape, f"shape {tuple(ours.shape)} != {tuple(theirs.shape)}"
    diff = (ours - theirs).abs().max().item()
    assert diff < tol, f"max |logits diff| {diff:.3g} is not below {tol}"
