"""How a model's pieces spell bytes, and how to show them: Ġ and ▁ as a space, <0xE4> as a byte, ## kept.

No `tokenizers` import here, so the command line can render without paying for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SPACE = "\u2581"  # ▁, SentencePiece's visible space
_BYTE_PIECE = re.compile(r"<0x([0-9A-F]{2})>")
_SHOWN_AS = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"}


def readable(data: bytes) -> str:
    """Text with whitespace made visible and each byte that is not part of a whole character as <E4>."""
    return "".join(_shown(char) for char in data.decode("utf-8", "surrogateescape"))


def _shown(char: str) -> str:
    if char in _SHOWN_AS:
        return _SHOWN_AS[char]
    if "\udc80" <= char <= "\udcff":  # surrogateescape's stand-in for an undecodable byte
        return f"<{ord(char) - 0xDC00:02X}>"
    return char if char.isprintable() else f"\\u{ord(char):04x}"


def whole_characters(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@dataclass(frozen=True)
class PieceForm:
    """How a model's pieces spell their bytes: byte-level characters, <0x..> pieces, ▁ for a space, affixes."""

    byte_level: bool
    byte_fallback: bool
    spaces: bool  # ▁ stands for a space (SentencePiece-style BPE and Unigram)
    prefix: str  # continuing_subword_prefix ("##"), carried by every piece but a word's first
    suffix: str  # end_of_word_suffix, carried by a word's last piece

    def read(self, piece: str, first: bool, last: bool) -> tuple[bytes, str]:
        """The piece's bytes and its display, with the affixes it carries kept in the display only."""
        prefix = self.prefix if self.prefix and not first and piece.startswith(self.prefix) else ""
        suffix = self.suffix if self.suffix and last and piece.endswith(self.suffix) else ""
        core = piece[len(prefix):len(piece) - len(suffix)]
        if self.byte_level:
            data = b"".join(bytes([_BYTE_OF[c]]) if c in _BYTE_OF else c.encode() for c in core)
        elif self.byte_fallback and (match := _BYTE_PIECE.fullmatch(core)):
            data = bytes([int(match.group(1), 16)])
        else:
            data = (core.replace(SPACE, " ") if self.spaces else core).encode()
        return data, prefix + readable(data) + suffix


def _byte_alphabet() -> dict[str, int]:
    """GPT-2's printable stand-in for every byte, as a map from the character back to the byte."""
    printable = {*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)}
    stand_ins = iter(range(256, 512))  # the other bytes take U+0100 on, in byte order ("Ġ" is the space)
    return {chr(byte) if byte in printable else chr(next(stand_ins)): byte for byte in range(256)}


_BYTE_OF = _byte_alphabet()
