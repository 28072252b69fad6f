"""Typed, bounded reads of config.json fields, so a hostile or broken config fails with its name.

Bounds matter: the model is built before weights are checked, so `n_layer: 10**9` must be refused
here rather than allocate (or loop) its way to a hang.
"""

from __future__ import annotations

from typing import Any

from lmtui.errors import LmtuiError

MAX_DIM = 1 << 20  # hidden sizes, heads, layers, positions: far above any real checkpoint
MAX_VOCAB = 1 << 24

_MISSING = object()


def _lookup(config: dict[str, Any], names: tuple[str, ...], default: Any) -> tuple[str, Any]:
    for name in names:
        if config.get(name) is not None:
            return name, config[name]
    if default is _MISSING:
        raise LmtuiError(f"config.json has no {' / '.join(names)}")
    return names[0], default


def int_field(
    config: dict[str, Any], *names: str, default: Any = _MISSING, lo: int = 1, hi: int = MAX_DIM
) -> int:
    """A whole number in [lo, hi] from the first of `names` present."""
    name, value = _lookup(config, names, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise LmtuiError(f"config.json: {name} must be a whole number from {lo} to {hi}, not {value!r}")
    return value


def float_field(config: dict[str, Any], *names: str, default: Any = _MISSING) -> float:
    name, value = _lookup(config, names, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise LmtuiError(f"config.json: {name} must be a number, not {value!r}")
    return float(value)


def bool_field(config: dict[str, Any], *names: str, default: Any = _MISSING) -> bool:
    name, value = _lookup(config, names, default)
    if not isinstance(value, bool):
        raise LmtuiError(f"config.json: {name} must be true or false, not {value!r}")
    return value


def str_field(config: dict[str, Any], *names: str, default: Any = _MISSING) -> str:
    name, value = _lookup(config, names, default)
    if not isinstance(value, str):
        raise LmtuiError(f"config.json: {name} must be a string, not {value!r}")
    return value


def divisible(numerator: int, denominator: int, what: str) -> int:
    if numerator % denominator:
        raise LmtuiError(f"config.json: {what} ({numerator}) is not a multiple of {denominator}")
    return numerator // denominator
