"""Small formatting helpers shared by the widgets (plain strings, no markup)."""

from __future__ import annotations

from lmtui.inspect.pieces import PieceForm

_VISIBLE = {" ": "·", "\n": "⏎", "\t": "→", "\r": "␍"}


def visible(text: str) -> str:
    """Whitespace and control characters drawn as symbols, so a token's edges can be seen."""
    return "".join(_VISIBLE.get(ch, ch if ch.isprintable() else f"\\x{ord(ch):02x}") for ch in text)


def count(number: int) -> str:
    """2_600_000 -> '2.6M': parameter counts at a glance."""
    for size, suffix in ((10**9, "B"), (10**6, "M"), (10**3, "k")):
        if number >= size:
            return f"{number / size:.1f}{suffix}"
    return str(number)


def percent(prob: float) -> str:
    return f"{prob * 100:5.1f}%" if prob >= 0.001 else f"{prob * 100:5.2g}%"


def bar(fraction: float, width: int) -> str:
    """A horizontal bar of eighth blocks, `fraction` (0..1) of `width` cells long."""
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    full, rest = divmod(eighths, 8)
    return "█" * full + ("" if rest == 0 else " ▏▎▍▌▋▊▉"[rest])


def piece_label(tokenizer_kind: str, piece: str) -> str:
    """A vocabulary piece as it reads (GPT-2's Ġ and SentencePiece's ▁ as ␣, <E4> for part of a
    character, WordPiece's ## kept), so attention and loss labels match the Tokens view's."""
    form = PieceForm(byte_level=tokenizer_kind == "byte-level BPE", byte_fallback=True,
                     spaces=tokenizer_kind in ("BPE", "Unigram"), prefix="", suffix="")
    return form.read(piece, first=True, last=True)[1] or "∅"
