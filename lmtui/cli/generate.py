"""`lmtui generate`: one-shot generation that streams to the terminal, or one JSON object with --json."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import click

from lmtui.cli.common import emit, model_options, open_session, read_text

if TYPE_CHECKING:
    from lmtui.generation import GenerateResult

EARLY_STOPPING = {"true": True, "false": False, "never": "never"}


def decoding_options(command: Any) -> Any:
    """transformers.generate()'s options; unset ones take the checkpoint's generation_config.json."""
    options = [
        click.option("--strategy", type=click.Choice(["greedy", "beam", "sample"]),
                     help="Decoding strategy (default: what generation_config.json implies, else greedy)."),
        click.option("--max-new-tokens", type=int, help="Tokens to generate (default: up to max_length, 20)."),
        click.option("--min-new-tokens", type=int, help="No end-of-text before this many tokens."),
        click.option("--num-beams", type=int, help="Beam width (beam search; default 4)."),
        click.option("--length-penalty", type=float, help="Beam scores are divided by length ** this."),
        click.option("--early-stopping", type=click.Choice(list(EARLY_STOPPING)), is_flag=False, flag_value="true",
                     help="Beam search stops when num_beams hypotheses are finished (true), by a heuristic "
                          "(false), or only when no better one is possible (never)."),
        click.option("--no-early-stopping", "early_stopping", flag_value="false",
                     help="Same as --early-stopping false."),
        click.option("--num-return-sequences", type=int, help="Sequences to return (beam or sample)."),
        click.option("--no-repeat-ngram-size", type=int, help="Never repeat an n-gram of this size."),
        click.option("--temperature", type=float, help="Sampling temperature (> 0)."),
        click.option("--top-k", type=int, help="Sample from the k most likely tokens (0: off)."),
        click.option("--top-p", type=float, help="Sample from the smallest set with this much probability."),
        click.option("--min-p", type=float, help="Drop tokens less likely than this times the most likely one."),
        click.option("--repetition-penalty", type=float, help="Penalise tokens already in the text (> 1)."),
        click.option("--seed", type=int, help="Random seed: the same seed gives the same samples."),
        click.option("--stop", multiple=True, help="Stop when this text appears (repeatable)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.command()
@click.argument("text", required=False)
@model_options
@decoding_options
@click.option("--steps", "with_steps", is_flag=True, help="With --json: add every step's candidates (or beams).")
def generate(text: str | None, model: str | None, device: str, dtype: str, as_json: bool, with_steps: bool,
             early_stopping: str | None, stop: tuple[str, ...], **options: Any) -> None:
    """Generate a continuation of TEXT (or stdin).

    Example: lmtui generate "The meaning of life is" --strategy beam --num-beams 4 --json
    """
    prompt = read_text(text)
    options["early_stopping"] = EARLY_STOPPING[early_stopping] if early_stopping is not None else None
    options["stop"] = stop or None
    session = open_session(model, device, dtype)
    run = session.stream(prompt, **options)  # validates before any work: bad options fail here
    for piece in run:
        if not as_json:
            click.echo(piece, nl=False)
    result = run.result
    assert result is not None
    if as_json:
        emit(result_json(result, with_steps), True, "")
    else:
        click.echo(render_rest(result))


def render_rest(result: GenerateResult) -> str:
    """What the stream did not show: nothing more for one streamed sequence, else every sequence."""
    if len(result.sequences) == 1 and result.strategy != "beam":
        return ""
    blocks = [result.sequences[0].text] if len(result.sequences) == 1 else []
    if len(result.sequences) > 1:
        for number, sequence in enumerate(result.sequences, start=1):
            blocks.append(f"--- {number} (score {sequence.score:.4f}, {sequence.finish_reason})\n{sequence.text}")
    return "\n".join(blocks)


def result_json(result: GenerateResult, with_steps: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "prompt": result.prompt,
        "prompt_token_ids": result.prompt_token_ids,
        "strategy": result.strategy,
        "settings": {key: value for key, value in asdict(result.settings).items() if key != "record_top_k"},
        "sequences": [asdict(sequence) for sequence in result.sequences],
    }
    if with_steps:
        data["steps"] = [{"kind": type(step).__name__, **asdict(step)} for step in result.steps]
    return data
