"""The decoding defaults a checkpoint ships, resolved as transformers 5 resolves its GenerationConfig.

`generate` must produce the tokens `transformers.generate()` produces with the same settings, and much of
that is decided by the checkpoint: which ids stop generation, beam count, length penalty, sampling knobs.
transformers reads `generation_config.json` when the folder has one and otherwise builds the same object
from `config.json` (`GenerationConfig.from_model_config`); fields neither sets take its global defaults.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmtui.errors import LmtuiError
from lmtui.jsonfile import read_json_object

GENERATION_CONFIG = "generation_config.json"
_NESTED_CONFIGS = ("decoder", "generator", "text_config")  # where from_model_config looks for a decoder's values


@dataclass(frozen=True)
class GenerationDefaults:
    """What `model.generate()` would use for this checkpoint when the caller passes nothing.

    Token ids are as the files give them: transformers' generate() later uses eos_token_ids[0] when pad is
    None, and bos_token_id when an encoder-decoder has no decoder_start_token_id; that is decoding's job.
    """

    eos_token_ids: tuple[int, ...] = ()
    bos_token_id: int | None = None
    pad_token_id: int | None = None
    decoder_start_token_id: int | None = None
    forced_bos_token_id: int | None = None
    forced_eos_token_ids: tuple[int, ...] = ()
    do_sample: bool = False
    num_beams: int = 1
    temperature: float = 1.0
    top_k: int = 50
    top_p: float = 1.0
    min_p: float | None = None
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    length_penalty: float = 1.0
    early_stopping: bool | str = False  # True, False or "never", as in transformers' beam search
    max_new_tokens: int | None = None
    max_length: int = 20
    min_new_tokens: int | None = None
    min_length: int = 0
    source: str = "defaults"  # the file the values came from, for `lmtui info` and error messages


_KINDS = {"bos_token_id": "id", "pad_token_id": "id", "decoder_start_token_id": "id", "forced_bos_token_id": "id",
          "do_sample": "bool", "num_beams": "int", "temperature": "float", "top_k": "int", "top_p": "float",
          "min_p": "float", "repetition_penalty": "float", "no_repeat_ngram_size": "int",
          "length_penalty": "float", "early_stopping": "stop", "max_new_tokens": "int", "max_length": "int",
          "min_new_tokens": "int", "min_length": "int"}
_ID_LISTS = {"eos_token_id": "eos_token_ids", "forced_eos_token_id": "forced_eos_token_ids"}
_KNOWN = set(_KINDS) | set(_ID_LISTS)


def load_generation_defaults(folder: Path, config: dict[str, Any]) -> GenerationDefaults:
    """Read generation_config.json, or derive from config.json (already parsed by the caller) as transformers does."""
    path = Path(folder) / GENERATION_CONFIG
    if path.is_file():
        return _from_values(read_json_object(path), str(path))
    return _from_values(_from_model_config(config), str(Path(folder) / "config.json"))


def _from_model_config(config: dict[str, Any]) -> dict[str, Any]:
    """GenerationConfig.from_model_config: top-level values, then a nested decoder config's for what is unset."""
    values = {key: value for key, value in config.items() if value is not None and key in _KNOWN}
    if config.get("force_bos_token_to_be_generated"):  # an old BART flag transformers still honours
        values["forced_bos_token_id"] = values.get("bos_token_id")
    nested = next((config[name] for name in _NESTED_CONFIGS if config.get(name)), None)
    if isinstance(nested, dict):
        for key in _KNOWN:
            if values.get(key) is None and key in nested:
                values[key] = nested[key]
    return values


def _from_values(values: dict[str, Any], source: str) -> GenerationDefaults:
    """Check each known value's type, so a bad checkpoint fails here with its file named, not deep in decoding."""
    chosen: dict[str, Any] = {"source": source}
    for key, kind in _KINDS.items():
        if values.get(key) is not None:
            chosen[key] = _checked(values[key], kind, key, source)
    for key, name in _ID_LISTS.items():
        if values.get(key) is not None:
            chosen[name] = _id_tuple(values[key], key, source)
    return GenerationDefaults(**chosen)


def _checked(value: Any, kind: str, key: str, source: str) -> Any:
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if kind in ("int", "id") and is_int:
        return value
    if kind == "float" and (is_int or isinstance(value, float)):
        return float(value)
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "stop" and (isinstance(value, bool) or value == "never"):
        return value
    wanted = {"int": "an integer", "id": "a token id", "float": "a number", "bool": "true or false",
              "stop": 'true, false or "never"'}[kind]
    raise LmtuiError(f"{source}: {key} should be {wanted}, not {json.dumps(value)}")


def _id_tuple(value: Any, key: str, source: str) -> tuple[int, ...]:
    """eos_token_id may be one id or a list of them (Llama 3 stops on several)."""
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in items):
        raise LmtuiError(f"{source}: {key} should be a token id or a list of them, not {json.dumps(value)}")
    return tuple(items)
