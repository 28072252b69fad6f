"""What a generation run is asked to do, resolved against the checkpoint's generation defaults.

Semantics and defaults follow `transformers.generate()` and `generation_config.json`, so the same
settings give the same tokens. Validation lives here so every face reports a bad value the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from lmtui.errors import InvalidOption
from lmtui.generation_defaults import GenerationDefaults

Strategy = Literal["greedy", "beam", "sample"]
EarlyStopping = bool | Literal["never"]


@dataclass(frozen=True)
class GenerationSettings:
    strategy: Strategy = "greedy"
    max_new_tokens: int = 20
    min_new_tokens: int = 0
    num_beams: int = 1
    length_penalty: float = 1.0
    early_stopping: EarlyStopping = False
    num_return_sequences: int = 1
    no_repeat_ngram_size: int = 0
    temperature: float = 1.0
    top_k: int = 50  # 0: off
    top_p: float = 1.0
    min_p: float | None = None
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    eos_token_ids: tuple[int, ...] = ()
    pad_token_id: int | None = None
    forced_bos_token_id: int | None = None
    forced_eos_token_ids: tuple[int, ...] = ()
    record_top_k: int = field(default=10, repr=False)  # candidates kept per step record

    @property
    def fill_token_id(self) -> int:
        """What finished rows are padded with: pad, else the first eos (as transformers does)."""
        if self.pad_token_id is not None:
            return self.pad_token_id
        return self.eos_token_ids[0] if self.eos_token_ids else 0

    def validate(self, prompt_len: int = 0, context_length: int | None = None) -> GenerationSettings:
        """Raise InvalidOption for values transformers would refuse or silently misuse."""
        problems = [
            (self.strategy not in ("greedy", "beam", "sample"),
             f"--strategy {self.strategy!r} is not one of greedy, beam, sample"),
            (self.max_new_tokens < 0, f"--max-new-tokens must be 0 or more, not {self.max_new_tokens}"),
            (self.min_new_tokens < 0, f"--min-new-tokens must be 0 or more, not {self.min_new_tokens}"),
            (self.num_beams < 1, f"--num-beams must be 1 or more, not {self.num_beams}"),
            (self.num_return_sequences < 1,
             f"--num-return-sequences must be 1 or more, not {self.num_return_sequences}"),
            (self.strategy == "beam" and self.num_return_sequences > self.num_beams,
             f"--num-return-sequences ({self.num_return_sequences}) cannot exceed --num-beams ({self.num_beams})"),
            (self.strategy == "greedy" and self.num_return_sequences > 1,
             "greedy search returns one sequence; use --strategy beam or sample for several"),
            (self.no_repeat_ngram_size < 0,
             f"--no-repeat-ngram-size must be 0 or more, not {self.no_repeat_ngram_size}"),
            (self.strategy == "sample" and not self.temperature > 0,
             f"--temperature must be above 0 for sampling, not {self.temperature}"),
            (self.top_k < 0, f"--top-k must be 0 (off) or more, not {self.top_k}"),
            (not 0 < self.top_p <= 1, f"--top-p must be in (0, 1], not {self.top_p}"),
            (self.min_p is not None and not 0 <= self.min_p <= 1, f"--min-p must be in [0, 1], not {self.min_p}"),
            (not self.repetition_penalty > 0, f"--repetition-penalty must be above 0, not {self.repetition_penalty}"),
            (any(not text for text in self.stop), "--stop needs a non-empty text"),
        ]
        if context_length is not None and prompt_len > context_length:
            problems.append((True, f"the prompt is {prompt_len} tokens; this model reads at most {context_length}"))
        for failed, message in problems:
            if failed:
                raise InvalidOption(message)
        return self


def settings_from_defaults(defaults: GenerationDefaults, prompt_len: int, **overrides: Any) -> GenerationSettings:
    """Settings as transformers would resolve them for this checkpoint, then the user's overrides.

    `overrides` with the value None mean "not given". Like transformers, when neither the user nor
    generation_config.json sets max_new_tokens, `max_length` (default 20) bounds prompt + output.
    """
    given = {name: value for name, value in overrides.items() if value is not None}
    known = {f.name for f in fields(GenerationSettings)}
    unknown = set(given) - known
    if unknown:
        raise TypeError(f"unknown generation settings: {', '.join(sorted(unknown))}")
    if defaults.max_new_tokens is not None:
        max_new = defaults.max_new_tokens
    else:
        max_new = max(defaults.max_length - prompt_len, 0)
    base = GenerationSettings(
        strategy="sample" if defaults.do_sample else "beam" if defaults.num_beams > 1 else "greedy",
        max_new_tokens=max_new,
        min_new_tokens=defaults.min_new_tokens or max(defaults.min_length - prompt_len, 0),
        num_beams=defaults.num_beams,
        length_penalty=defaults.length_penalty,
        early_stopping=defaults.early_stopping,
        no_repeat_ngram_size=defaults.no_repeat_ngram_size,
        temperature=defaults.temperature,
        top_k=defaults.top_k,
        top_p=defaults.top_p,
        min_p=defaults.min_p,
        repetition_penalty=defaults.repetition_penalty,
        eos_token_ids=defaults.eos_token_ids,
        pad_token_id=defaults.pad_token_id,
        forced_bos_token_id=defaults.forced_bos_token_id,
        forced_eos_token_ids=defaults.forced_eos_token_ids,
    )
    settings = replace(base, **given)
    if settings.strategy == "beam" and "num_beams" not in given and settings.num_beams == 1:
        settings = replace(settings, num_beams=4)  # asking for beam search without a width
    return settings
