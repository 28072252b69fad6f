"""The one-shot commands. Parsing and rendering only: the work happens in `lmtui.session`.

torch is imported only when a command opens a session, so `lmtui --help` answers at once.
"""

from __future__ import annotations

import click

from lmtui import __version__
from lmtui.cli.attention import attention
from lmtui.cli.common import Group
from lmtui.cli.fill_mask import fill_mask
from lmtui.cli.generate import generate
from lmtui.cli.info import info
from lmtui.cli.loss import loss
from lmtui.cli.tokenize import tokenize


@click.group(cls=Group, invoke_without_command=True)
@click.version_option(__version__, "-V", "--version", prog_name="lmtui")
@click.option("-m", "--model", default=None, metavar="PATH_OR_ID",
              help="The model to open (default: the bundled weights/tiny-gpt); also the default for commands.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"]), default="auto",
              show_default=True, help="auto keeps the checkpoint's dtype.")
@click.pass_context
def main(ctx: click.Context, model: str | None, device: str, dtype: str) -> None:
    """Run transformer language models in a terminal and see what happens inside them.

    With no command, opens the app: lmtui --model PATH_OR_ID
    """
    if ctx.invoked_subcommand is None:
        from lmtui.tui.app import run  # the app loads only when asked for, and torch only in its worker

        run(model, device, dtype)
        return
    given = {name: ctx.params[name] for name in ("model", "device", "dtype")
             if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE}
    ctx.default_map = {name: given for name in main.commands} if given else None



main.add_command(info)
main.add_command(generate)
main.add_command(fill_mask)
main.add_command(loss)
main.add_command(attention)
main.add_command(tokenize)
