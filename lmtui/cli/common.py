"""What every command shares: error handling, the common options, reading text, the one output idiom."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from lmtui.errors import InvalidOption, LmtuiError

if TYPE_CHECKING:
    from lmtui.session import Session


class Group(click.Group):
    """Turns every user-caused error into `Error: <one line>` on stderr: exit status 2 for an
    unusable option or prompt, 1 for anything else (a broken checkpoint, a missing file)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LmtuiError as error:
            click.echo(f"Error: {error}", err=True)
            ctx.exit(2 if isinstance(error, InvalidOption) else 1)


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


def read_text(text: str | None) -> str:
    """TEXT from the argument, or from stdin when it is `-` or absent (and stdin is not a terminal)."""
    if text is not None and text != "-":
        return text
    if text is None and sys.stdin.isatty():
        raise click.UsageError("give TEXT as an argument, or pipe it on stdin")
    return sys.stdin.read()
