"""The decoding form's fields: which GenerationSettings field each edits, for which strategies, and
how typed text becomes a value. Whether a value is allowed is the session's call (`Session.settings`),
so the rules live in one place for every face.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lmtui.decoding.settings import GenerationSettings
from lmtui.errors import InvalidOption

STRATEGIES = ("greedy", "beam", "sample")
EVERY = STRATEGIES


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError("is not a whole number") from None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError("is not a number") from None


def _stops(text: str) -> tuple[str, ...]:
    """Stop texts exactly as typed (spaces count), separated by |; \\n is a newline, \\t a tab, \\| and \\\\
    stand for themselves."""
    escapes = {"n": "\n", "t": "\t", "|": "\0", "\\": "\\"}  # \0 holds an escaped | until the split
    out, chars = [], iter(text)
    for char in chars:
        if char == "\\":
            following = next(chars, "")
            if following not in escapes:
                raise ValueError(f"has an unknown escape \\{following} (use \\n, \\t, \\| or \\\\)")
            char = escapes[following]
        out.append(char)
    return tuple(part.replace("\0", "|") for part in "".join(out).split("|"))


def stops_text(stops: tuple[str, ...]) -> str:
    """Stop texts as the field shows them: the inverse of _stops."""
    escaped = (s.replace("\\", "\\\\").replace("|", "\\|").replace("\n", "\\n").replace("\t", "\\t") for s in stops)
    return "|".join(escaped) if stops else "none"


@dataclass(frozen=True)
class Field:
    name: str  # a GenerationSettings field
    label: str
    strategies: tuple[str, ...]
    parse: Callable[[str], Any]
    help: str

    @property
    def flag(self) -> str:
        """How the session's messages name it (the command-line option)."""
        return "--" + self.name.replace("_", "-")


FIELDS = (
    Field("max_new_tokens", "max new tokens", EVERY, _whole, "Tokens to generate"),
    Field("min_new_tokens", "min new tokens", EVERY, _whole, "No end-of-text before this many tokens"),
    Field("stop", "stop at", EVERY, _stops, "Stop when one of these texts appears: separate them with |, "
          "write a newline as \\n"),
    Field("num_beams", "beams", ("beam",), _whole, "Beam width"),
    Field("length_penalty", "length penalty", ("beam",), _number, "Beam scores are divided by length ** this"),
    Field("temperature", "temperature", ("sample",), _number, "Divide the logits by this (> 0)"),
    Field("top_k", "top-k", ("sample",), _whole, "Keep the k most likely tokens (0: off)"),
    Field("top_p", "top-p", ("sample",), _number, "Keep the smallest set with this much probability"),
    Field("min_p", "min-p", ("sample",), _number, "Drop tokens below this times the most likely one's probability"),
    Field("seed", "seed", ("sample",), _whole, "The same seed draws the same tokens"),
    Field("num_return_sequences", "sequences", ("beam", "sample"), _whole, "Sequences to return"),
    Field("repetition_penalty", "repetition penalty", EVERY, _number, "Penalise tokens already in the text (> 1)"),
    Field("no_repeat_ngram_size", "no-repeat n-gram", EVERY, _whole, "Never repeat an n-gram of this size (0: off)"),
)
EARLY_STOPPING = {"true": True, "false": False, "never": "never"}  # the one field chosen, not typed


def parse(strategy: str, texts: dict[str, str], early_stopping: str | None) -> dict[str, Any]:
    """The options a run with this strategy would use; empty text means "the checkpoint's default".

    Raises InvalidOption naming the field whose text is not a number.
    """
    options: dict[str, Any] = {"strategy": strategy}
    for field in FIELDS:
        text = texts.get(field.name, "")
        text = text if field.name == "stop" else text.strip()  # a stop text's spaces are part of it
        if strategy in field.strategies and text:
            try:
                options[field.name] = field.parse(text)
            except ValueError as error:
                raise InvalidOption(f"{field.flag} {text!r} {error}") from None
    if strategy == "beam" and early_stopping is not None:
        options["early_stopping"] = EARLY_STOPPING[early_stopping]
    return options


def field_named_in(message: str) -> Field | None:
    """The field an InvalidOption message is about: the first one it names by its command-line flag."""
    named = [(message.index(field.flag), field) for field in FIELDS if field.flag in message]
    return min(named, key=lambda pair: pair[0])[1] if named else None


def readable(message: str) -> str:
    """A session message with its command-line flags replaced by the form's labels."""
    for field in sorted(FIELDS, key=lambda f: -len(f.flag)):
        message = message.replace(field.flag, field.label)
    return message.replace("--early-stopping", "early stopping").replace("--strategy", "strategy")


def shown(settings: GenerationSettings, name: str) -> str:
    """A resolved setting as the form shows it in an empty field (the default it stands for)."""
    value = getattr(settings, name)
    if name == "stop":
        return stops_text(value)
    if value is None:
        return "random" if name == "seed" else "off"
    if name == "top_k" and value == 0:
        return "0 (off)"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
