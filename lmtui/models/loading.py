"""Build a family's model on the meta device, then fill it with checked checkpoint tensors.

Building on `meta` allocates nothing, so the only memory used is the tensors themselves, read
through safetensors' memory map and converted to the requested dtype one by one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from lmtui.checkpoint import Checkpoint, read_tensors
from lmtui.models import family_for
from lmtui.models.weights import match_weights

Progress = Callable[[int, int], None]  # (tensors loaded, tensors in all)

SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def checkpoint_dtype(checkpoint: Checkpoint) -> torch.dtype:
    """The floating dtype most of the checkpoint's tensors are stored in (what `--dtype auto` keeps)."""
    counts: dict[torch.dtype, int] = {}
    for entry in checkpoint.tensors.values():
        if entry.dtype in SAFETENSORS_DTYPES:
            dtype = SAFETENSORS_DTYPES[entry.dtype]
            counts[dtype] = counts.get(dtype, 0) + 1
    return max(counts, key=counts.__getitem__) if counts else torch.float32


def load_model(
    checkpoint: Checkpoint,
    dtype: torch.dtype | None,
    device: torch.device,
    progress: Progress | None = None,
) -> nn.Module:
    """The checkpoint's model in `dtype` (None: as stored) on `device`, in eval mode."""
    family = family_for(checkpoint.config)
    config = family.Config.from_hf(checkpoint.config)
    if hasattr(family, "layout"):  # what only the tensor names tell (an MLM head, a pooler, a stored bias)
        config = family.layout(config, checkpoint.tensors)
    with torch.device("meta"):
        model: nn.Module = family.MODEL(config)
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    plan = match_weights(family.WEIGHTS, checkpoint.tensors, expected, model.tied)
    dtype = dtype or checkpoint_dtype(checkpoint)
    wanted = {name: checkpoint.tensors[name] for name in plan}
    state = {}
    for done, (name, tensor) in enumerate(read_tensors(wanted, _safetensors_device(device)), start=1):
        ours = plan[name]
        if family.WEIGHTS.is_transposed(ours):
            tensor = tensor.t()  # a view: F.linear on it is a plain (in, out) matmul, no copy needed
        state[ours] = tensor.to(device=device, dtype=dtype if tensor.is_floating_point() else None)
        if progress is not None:
            progress(done, len(wanted))
    model.load_state_dict(state, strict=False, assign=True)
    for target, source in model.tied.items():
        owner, _, attribute = target.rpartition(".")
        setattr(model.get_submodule(owner), attribute, model.get_parameter(source))
    return model.to(device).eval()


def _safetensors_device(device: torch.device) -> str:
    return str(device) if device.type == "cuda" else "cpu"
