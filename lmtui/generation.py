"""One generation run for a session: prompt in, streamed text and a plain-data result out.

This is where the tokenizer meets the decoding strategies, which never see text themselves.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass

from torch import nn

from lmtui.decoding.beam import beam_search
from lmtui.decoding.records import BeamStep, TokenStep
from lmtui.decoding.search import StopCheck, token_search
from lmtui.decoding.settings import GenerationSettings
from lmtui.decoding.stepper import DecoderStepper, EncoderDecoderStepper, Stepper
from lmtui.decoding.text import TextStream, stop_check, truncate_at_stop
from lmtui.errors import InvalidOption
from lmtui.tokenizer import Tokenizer


@dataclass(frozen=True)
class GeneratedText:
    text: str  # without special tokens, as transformers' pipelines show it
    token_ids: list[int]  # generated tokens only, with the final eos if one was made
    score: float
    finish_reason: str  # eos, length, stop, or cancelled (the run was stopped by `GenerationRun.cancel`)


@dataclass(frozen=True)
class GenerateResult:
    prompt: str
    prompt_token_ids: list[int]
    settings: GenerationSettings
    sequences: list[GeneratedText]
    steps: tuple[TokenStep | BeamStep, ...]

    @property
    def strategy(self) -> str:
        return self.settings.strategy


class GenerationRun:
    """Iterate for the text of the first sequence as it is produced; `result` is set at the end.

    Every decoding step yields once, with an empty piece when it shows no new text: beam search and
    several samples stream nothing until they finish (their first sequence is not known before then),
    but a consumer still sees each step arrive in `steps` and can `cancel()` between any two.
    """

    def __init__(self, model: nn.Module, kind: str, tokenizer: Tokenizer, prompt: str, prompt_ids: list[int],
                 settings: GenerationSettings, start_id: int | None) -> None:
        self.settings = settings
        self.result: GenerateResult | None = None
        self.steps: list[TokenStep | BeamStep] = []  # grows as the run goes
        self._cancelled = False
        stepper, decoder_prompt = make_stepper(model, kind, prompt_ids, settings, start_id)
        self._pieces = self._run(stepper, decoder_prompt, tokenizer, prompt, prompt_ids, settings)

    def __iter__(self) -> Iterator[str]:
        return self._pieces

    def cancel(self) -> None:
        """Stop after the step in progress (safe from another thread); the run then ends with what it
        has, its sequences marked "cancelled"."""
        self._cancelled = True

    def _run(self, stepper: Stepper, decoder_prompt: list[int], tokenizer: Tokenizer, prompt: str,
             prompt_ids: list[int], settings: GenerationSettings) -> Generator[str, None, None]:
        stop = stop_check(tokenizer.decode, settings.stop)
        strategy = beam_search if settings.strategy == "beam" else token_search
        search = strategy(stepper, decoder_prompt, settings, stop)
        streaming = settings.strategy != "beam" and settings.num_return_sequences == 1
        stream = TextStream(tokenizer.decode, skip_special_tokens=True)
        emitted, ended, generated = "", None, []
        while not self._cancelled:
            try:
                record = next(search)
            except StopIteration as done:
                ended = done.value
                break
            self.steps.append(record)
            piece = ""
            if streaming and isinstance(record, TokenStep):
                generated.append(record.token_id)
                # The token that completes a stop string may run past it (a stop string ending inside a
                # word): its text comes at the end, cut where the final text is.
                if stop is None or not stop(generated):
                    piece = stream.push(record.token_id)
            emitted += piece
            yield piece
        if ended is None:  # cancelled: end the search where it is
            search.close()
            texts = cancelled_texts(tokenizer, self.steps, settings, stop)
        else:
            texts = [generated_text(tokenizer, seq.token_ids, seq.score, seq.finish_reason, settings) for seq in ended]
        if streaming and texts[0].text.startswith(emitted) and len(texts[0].text) > len(emitted):
            yield texts[0].text[len(emitted) :]  # what the stream held back, cut at a stop string
        self.result = GenerateResult(prompt, prompt_ids, settings, texts, tuple(self.steps))


def generated_text(tokenizer: Tokenizer, token_ids: tuple[int, ...], score: float, finish_reason: str,
                   settings: GenerationSettings) -> GeneratedText:
    text = tokenizer.decode(list(token_ids), skip_special_tokens=True)
    if finish_reason in ("stop", "cancelled"):
        text = truncate_at_stop(text, settings.stop)
    return GeneratedText(text, list(token_ids), score, finish_reason)


def cancelled_texts(tokenizer: Tokenizer, steps: list[TokenStep | BeamStep], settings: GenerationSettings,
                    stop: StopCheck | None) -> list[GeneratedText]:
    """What a cancelled run has so far: each row's tokens (greedy, sampling), or the best running beams
    rebuilt from the step records, scored with running sums of log-probabilities (no length penalty:
    none of them finished). Rows that had already ended keep their reason."""
    if settings.strategy == "beam":
        paths = beam_paths([step for step in steps if isinstance(step, BeamStep)])[: settings.num_return_sequences]
        return [generated_text(tokenizer, ids, score, "cancelled", settings) for ids, score in paths]
    rows = settings.num_return_sequences if settings.strategy == "sample" else 1
    tokens: list[list[int]] = [[] for _ in range(rows)]
    scores = [0.0] * rows
    for step in steps:
        if isinstance(step, TokenStep):
            tokens[step.row].append(step.token_id)
            scores[step.row] += step.logprob
    return [generated_text(tokenizer, tuple(ids), score, _ended_reason(ids, settings, stop), settings)
            for ids, score in zip(tokens, scores)]


def _ended_reason(ids: list[int], settings: GenerationSettings, stop: StopCheck | None) -> str:
    if ids and ids[-1] in settings.eos_token_ids:
        return "eos"
    if ids and stop is not None and stop(ids):
        return "stop"
    return "cancelled"


def beam_paths(steps: list[BeamStep]) -> list[tuple[tuple[int, ...], float]]:
    """The running beams after the last step, best first, as (generated tokens, running score).

    A step's running hypotheses come first and in beam order, so a hypothesis' `parent` is the index
    of a running hypothesis of the step before.
    """
    paths: list[tuple[tuple[int, ...], float]] = [((), 0.0)]
    for step in steps:
        running = [h for h in step.hypotheses if h.status == "running"]
        paths = [(paths[h.parent][0] + (h.token_id,), h.score) for h in running if h.parent < len(paths)]
    return paths


def make_stepper(model: nn.Module, kind: str, prompt_ids: list[int], settings: GenerationSettings,
                 start_id: int | None) -> tuple[Stepper, list[int]]:
    """The stepper for this kind of model and the ids the strategies see as the (decoder) prompt:
    the prompt itself for a decoder, the decoder start token for an encoder-decoder."""
    if kind == "decoder":
        return DecoderStepper(model, prompt_ids, settings.max_new_tokens), prompt_ids
    if kind == "encoder-decoder":
        if start_id is None:
            raise InvalidOption("this encoder-decoder names no decoder_start_token_id (nor bos) to start from")
        return EncoderDecoderStepper(model, prompt_ids, start_id, settings.max_new_tokens), [start_id]
    raise InvalidOption("this is an encoder (a fill-mask model): it does not generate text; use lmtui fill-mask")


def prompt_token_ids(tokenizer: Tokenizer, prompt: str, bos_token_id: int | None) -> list[int]:
    """The prompt as the checkpoint's tokenizer encodes it; an empty one starts from BOS, as transformers does."""
    ids = list(tokenizer.encode(prompt).ids)
    if ids:
        return ids
    if bos_token_id is None:
        raise InvalidOption("the prompt is empty and this model has no start-of-text token to begin from")
    return [bos_token_id]


def check_length(
    prompt_len: int, decoder_prompt_len: int, settings: GenerationSettings, context: int | None
) -> None:
    """Refuse runs that would read past the model's context (None: it has no hard limit), before any
    work is done. For a decoder the prompt and the output share the context; an encoder-decoder's
    source and output each have their own (the decoder's output starts after its start token).
    """
    settings.validate(prompt_len, context)
    if context is not None and decoder_prompt_len + settings.max_new_tokens > context:
        room = context - decoder_prompt_len
        raise InvalidOption(
            f"a {decoder_prompt_len}-token prompt leaves room for {room} new tokens in this model's "
            f"{context}-token context, not {settings.max_new_tokens}"
        )
