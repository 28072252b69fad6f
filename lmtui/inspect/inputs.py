"""The token ids an inspection reads, from typed text or from the session's last generation.

Ids rather than text, so generated output is inspected exactly as it was produced: decoding and
re-encoding a generation does not always give back the same tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lmtui.generation import GenerateResult


@dataclass(frozen=True)
class TokenInputs:
    """What the model reads. `ids`: the whole text of a decoder or an encoder, the source of an
    encoder-decoder. `target_ids`: an encoder-decoder's decoder side, without its start token (the
    decoder reads `[start] + target_ids[:-1]` and is scored on `target_ids`); None when not given."""

    ids: tuple[int, ...]
    target_ids: tuple[int, ...] | None = None

    @classmethod
    def of_generation(cls, kind: str, result: GenerateResult) -> TokenInputs:
        """A generation's first sequence as the model read it: a decoder's prompt followed by its
        output; an encoder-decoder's source, with the output as the target."""
        output = tuple(result.sequences[0].token_ids)
        if kind == "encoder-decoder":
            return cls(tuple(result.prompt_token_ids), output)
        return cls(tuple(result.prompt_token_ids) + output)
