"""lmtui.generation_defaults against the GenerationConfig transformers' generate() would use for the same folder."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from transformers import GenerationConfig

from lmtui.errors import LmtuiError
from lmtui.generation_defaults import GenerationDefaults, load_generation_defaults

BART_CONFIG = {  # the generation keys bart-large-cnn keeps in config.json
    "model_type": "bart", "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1, "decoder_start_token_id": 2,
    "forced_bos_token_id": 0, "forced_eos_token_id": 2, "num_beams": 4, "length_penalty": 2.0, "max_length": 142,
    "min_length": 56, "no_repeat_ngram_size": 3, "early_stopping": True, "d_model": 16, "vocab_size": 50,
}


def _folder(tmp_path: Path, config: dict[str, Any], generation: dict[str, Any] | None = None) -> Path:
    (tmp_path / "config.json").write_text(json.dumps(config))
    if generation is not None:
        (tmp_path / "generation_config.json").write_text(json.dumps(generation))
    return tmp_path


def _transformers_view(folder: Path) -> dict[str, Any]:
    """What generate() ends up with: the loaded GenerationConfig, then its global defaults for unset fields."""
    if (folder / "generation_config.json").exists():
        loaded = GenerationConfig.from_pretrained(folder)
    else:  # what PreTrainedModel.from_pretrained falls back to
        loaded = GenerationConfig.from_pretrained(folder, config_file_name="config.json", _from_model_config=True)
    values = loaded.to_dict()
    for key, default in GenerationConfig._get_default_generation_params().items():
        if values.get(key) is None:
            values[key] = default
    return values


def _assert_matches_transformers(folder: Path) -> GenerationDefaults:
    ours = load_generation_defaults(folder, json.loads((folder / "config.json").read_text()))
    theirs = _transformers_view(folder)
    for field in fields(GenerationDefaults):
        if field.name == "source":
            continue
        key = {"eos_token_ids": "eos_token_id", "forced_eos_token_ids": "forced_eos_token_id"}.get(field.name)
        if key is not None:
            value = theirs.get(key)
            expected = () if value is None else tuple(value) if isinstance(value, list) else (value,)
        else:
            expected = theirs.get(field.name)
        assert getattr(ours, field.name) == expected, field.name
    return ours


def test_config_json_only_like_bart(tmp_path: Path) -> None:
    ours = _assert_matches_transformers(_folder(tmp_path, BART_CONFIG))
    assert ours.eos_token_ids == (2,) and ours.forced_bos_token_id == 0 and ours.forced_eos_token_ids == (2,)
    assert (ours.num_beams, ours.length_penalty, ours.max_length, ours.min_length) == (4, 2.0, 142, 56)
    assert ours.early_stopping is True and ours.no_repeat_ngram_size == 3 and ours.decoder_start_token_id == 2
    assert ours.top_k == 50 and ours.temperature == 1.0 and ours.do_sample is False  # global defaults
    assert ours.source == str(tmp_path / "config.json")


def test_generation_config_json_wins_and_config_json_is_ignored(tmp_path: Path) -> None:
    generation = {"bos_token_id": 1, "eos_token_id": [128001, 128008, 128009], "do_sample": True,
                  "temperature": 0.6, "top_p": 0.9, "min_p": 0.05, "repetition_penalty": 1.1, "max_new_tokens": 64,
                  "min_new_tokens": 2, "transformers_version": "4.45.0", "_from_model_config": False}
    ours = _assert_matches_transformers(_folder(tmp_path, {**BART_CONFIG, "pad_token_id": 7}, generation))
    assert ours.eos_token_ids == (128001, 128008, 128009) and ours.bos_token_id == 1
    assert ours.pad_token_id is None and ours.num_beams == 1 and ours.max_length == 20  # config.json not merged in
    assert (ours.do_sample, ours.temperature, ours.top_p, ours.min_p) == (True, 0.6, 0.9, 0.05)
    assert (ours.repetition_penalty, ours.max_new_tokens, ours.min_new_tokens) == (1.1, 64, 2)
    assert ours.source == str(tmp_path / "generation_config.json")


def test_eos_as_int_in_generation_config(tmp_path: Path) -> None:
    ours = _assert_matches_transformers(_folder(tmp_path, {"model_type": "gpt2"}, {"eos_token_id": 50256,
                                                                                    "bos_token_id": 50256}))
    assert ours.eos_token_ids == (50256,) and ours.bos_token_id == 50256


def test_eos_list_and_nested_decoder_config(tmp_path: Path) -> None:
    config = {"model_type": "encoder-decoder", "eos_token_id": [5, 6], "pad_token_id": None,
              "decoder": {"pad_token_id": 3, "decoder_start_token_id": 4, "eos_token_id": 9, "num_beams": 2}}
    ours = _assert_matches_transformers(_folder(tmp_path, config))
    assert ours.eos_token_ids == (5, 6)  # top level wins over the nested decoder's
    assert (ours.pad_token_id, ours.decoder_start_token_id, ours.num_beams) == (3, 4, 2)


def test_force_bos_token_to_be_generated(tmp_path: Path) -> None:
    config = {"model_type": "bart", "bos_token_id": 0, "force_bos_token_to_be_generated": True}
    assert _assert_matches_transformers(_folder(tmp_path, config)).forced_bos_token_id == 0


def test_nothing_set_gives_transformers_defaults(tmp_path: Path) -> None:
    ours = _assert_matches_transformers(_folder(tmp_path, {"model_type": "llama", "hidden_size": 8}))
    assert ours == GenerationDefaults(source=str(tmp_path / "config.json"))
    assert ours.eos_token_ids == () and ours.early_stopping is False and ours.max_new_tokens is None


def test_early_stopping_never(tmp_path: Path) -> None:
    ours = _assert_matches_transformers(_folder(tmp_path, {}, {"early_stopping": "never", "num_beams": 3}))
    assert ours.early_stopping == "never" and ours.num_beams == 3


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", "\"text\""])
def test_invalid_generation_config_json(tmp_path: Path, content: str) -> None:
    (tmp_path / "generation_config.json").write_text(content)
    with pytest.raises(LmtuiError) as info:
        load_generation_defaults(tmp_path, {})
    assert str(tmp_path / "generation_config.json") in str(info.value) and "\n" not in str(info.value)
    assert info.value.__cause__ is None


@pytest.mark.parametrize("key, value", [("eos_token_id", "</s>"), ("eos_token_id", [2, None]), ("num_beams", 2.5),
                                        ("temperature", "hot"), ("do_sample", 1), ("early_stopping", "soon"),
                                        ("max_new_tokens", True)])
def test_wrong_value_types_name_file_and_key(tmp_path: Path, key: str, value: Any) -> None:
    folder = _folder(tmp_path, {}, {key: value})
    with pytest.raises(LmtuiError, match=key) as info:
        load_generation_defaults(folder, {})
    assert str(folder / "generation_config.json") in str(info.value)
    with pytest.raises(LmtuiError, match=key):
        load_generation_defaults(tmp_path / "elsewhere", {key: value})  # the same check on config.json values


def test_integers_accepted_where_floats_expected(tmp_path: Path) -> None:
    ours = load_generation_defaults(_folder(tmp_path, {}, {"temperature": 1, "top_p": 1}), {})
    assert isinstance(ours.temperature, float) and isinstance(ours.top_p, float)
