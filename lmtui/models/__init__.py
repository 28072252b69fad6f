"""The model package: one family per file, chosen by config.json's `model_type`.

A family module provides `KIND`, `MODEL_TYPES`, `HARD_CONTEXT` (whether inputs past the config's
context length are refused), a `Config` with `from_hf(dict)`, `MODEL` (the model class, built from
that config) and `WEIGHTS`, its `WeightTable`. By kind:

- "decoder": `forward(input_ids, key_mask, positions, cache) -> logits`, `new_cache(batch, max_len)`;
- "encoder": `encode(input_ids, key_mask, token_type_ids) -> states`, `forward(...) -> MLM logits`;
- "encoder-decoder": `encode(input_ids, key_mask) -> states`, `cross_cache(states) -> CrossCache`,
  `decode(decoder_ids, cross, encoder_mask, cache) -> logits`, `new_cache(batch, max_len)`, and
  `forward(input_ids, decoder_input_ids, key_mask) -> logits` (teacher forced).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from lmtui.errors import LmtuiError
from lmtui.models import bart, bert, distilbert, gpt2, llama, marian, roberta, t5

FAMILY_MODULES: tuple[ModuleType, ...] = (gpt2, llama, bert, roberta, distilbert, bart, marian, t5)
FAMILIES: dict[str, ModuleType] = {t: module for module in FAMILY_MODULES for t in module.MODEL_TYPES}


def family_for(config: dict[str, Any]) -> ModuleType:
    """The family module for a config.json, or an error that lists what is supported."""
    model_type = config.get("model_type")
    if model_type not in FAMILIES:
        supported = ", ".join(sorted(FAMILIES))
        raise LmtuiError(f"config.json: unsupported model_type {model_type!r} (supported: {supported})")
    return FAMILIES[model_type]
