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
@click.pass_context
def main(ctx: click.Context) -> None:
    """Run transformer language models in a terminal and see what happens inside them."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())



main.add_command(info)
main.add_command(generate)
main.add_command(fill_mask)
main.add_command(loss)
main.add_command(attention)
main.add_command(tokenize)
