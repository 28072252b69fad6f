"""The one-shot commands. Parsing and rendering only: the work happens in `lmtui.session`.

torch is imported only when a command opens a session, so `lmtui --help` answers at once.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import click

from lmtui import __version__
from lmtui.errors import LmtuiError

if TYPE_CHECKING:
    from lmtui.session import ModelInfo, Session


class Group(click.Group):
    """Turns every user-caused error into `Error: <one line>` and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LmtuiError as error:
            raise click.ClickException(str(error)) from None


def model_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options every command shares (DESIGN.md's command-line contract)."""
    options = [
        click.option("-m", "--model", default=None, metavar="PATH_OR_ID",
                     help="Model folder, a .safetensors file in one, or a Hub id in the local cache "
                          "(default: the bundled weights/tiny-gpt)."),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True),
        click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"]), default="auto",
                     show_default=True, help="auto keeps the checkpoint's dtype."),
        click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON object on stdout."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@contextmanager
def load_progress(enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A transient progress bar on stderr while tensors load, only when a person is watching."""
    if not enabled:
        yield None
        return
    from rich.progress import Progress

    with Progress(transient=True, console=_stderr_console()) as bar:
        task = bar.add_task("loading tensors", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def open_session(model: str | None, device: str, dtype: str) -> Session:
    from lmtui.session import Session

    with load_progress(sys.stderr.isatty()) as progress:
        return Session(model, device=device, dtype=dtype, progress=progress)


def emit(data: dict[str, Any], as_json: bool, text: str) -> None:
    """The one output idiom: a single JSON object with --json, readable text otherwise."""
    click.echo(json.dumps(data, ensure_ascii=False) if as_json else text)


@click.group(cls=Group, invoke_without_command=True)
@click.version_option(__version__, "-V", "--version", prog_name="lmtui")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Run transformer language models in a terminal and see what happens inside them."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


@main.command()
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
        "family": f"{summary.family} ({summary.model_type})",
        "parameters": f"{summary.parameters:,} ({human(summary.parameters, 1000, COUNT_UNITS)})",
        "layers": str(summary.layers),
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
