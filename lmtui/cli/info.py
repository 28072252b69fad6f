"""`lmtui info`: what a checkpoint is, in one screen or one JSON object."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

import click

from lmtui.cli.common import emit, model_options, open_session

if TYPE_CHECKING:
    from lmtui.session import ModelInfo


@click.command()
@model_options
def info(model: str | None, device: str, dtype: str, as_json: bool) -> None:
    """Summarise a model: family, size, shape, dtype, device and attention backend.

    Example: lmtui info -m HuggingFaceTB/SmolLM2-135M --json
    """
    summary = open_session(model, device, dtype).info()
    emit(asdict(summary), as_json, render_info(summary))


def render_info(summary: ModelInfo) -> str:
    rows = {
        "model": summary.name,
        "path": summary.path,
        "family": f"{summary.family} ({summary.model_type}, {summary.kind})",
        "parameters": f"{summary.parameters:,} ({human(summary.parameters, 1000, COUNT_UNITS)})",
        "layers": str(summary.layers) if summary.encoder_layers is None
        else f"{summary.encoder_layers} encoder, {summary.layers} decoder",
        "heads": f"{summary.heads} query, {summary.kv_heads} key/value",
        "hidden size": str(summary.hidden_size),
        "vocabulary": f"{summary.vocab_size:,}",
        "context length": f"{summary.context_length:,}",
        "dtype": summary.dtype,
        "device": summary.device,
        "attention": summary.attention_backend,
        "tokenizer": summary.tokenizer,
        "file size": human(summary.file_size, 1024, BYTE_UNITS),
    }
    width = max(map(len, rows))
    return "\n".join(f"{key:<{width}}  {value}" for key, value in rows.items())


COUNT_UNITS = ("", "K", "M", "B", "T")
BYTE_UNITS = (" B", " KiB", " MiB", " GiB", " TiB")


def human(value: float, base: int, units: tuple[str, ...]) -> str:
    """1234567 -> '1.2M' with COUNT_UNITS (base 1000), '1.2 MiB' with BYTE_UNITS (base 1024)."""
    step = 0
    while value >= base and step < len(units) - 1:
        value /= base
        step += 1
    return f"{value:.1f}{units[step]}" if step else f"{value:.0f}{units[0]}"
