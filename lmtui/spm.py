"""Read a SentencePiece model file (`*.spm`, `*.model`) without the sentencepiece or protobuf packages.

A model file is one serialized `ModelProto`. lmtui needs only a few of its fields, so this is a minimal
reader of the protobuf wire format (varints, fixed 32/64-bit values, length-delimited fields) that keeps
those fields and skips the rest. Field numbers follow sentencepiece_model.proto.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from lmtui.errors import LmtuiError

DEFAULT_UNK_SURFACE = " \u2047 "  # sentencepiece shows an <unk> piece as " ⁇ " when decoding


class PieceType(IntEnum):
    NORMAL = 1
    UNKNOWN = 2
    CONTROL = 3
    USER_DEFINED = 4
    UNUSED = 5
    BYTE = 6


class ModelType(IntEnum):
    UNIGRAM = 1
    BPE = 2
    WORD = 3
    CHAR = 4


@dataclass(frozen=True)
class Piece:
    piece: str
    score: float
    type: PieceType


@dataclass(frozen=True)
class NormalizerSpec:
    """How sentencepiece rewrites text before segmenting it; the defaults are proto2's."""

    name: str = ""
    precompiled_charsmap: bytes = b""
    add_dummy_prefix: bool = True
    remove_extra_whitespaces: bool = True
    escape_whitespaces: bool = True


@dataclass(frozen=True)
class SpmModel:
    pieces: tuple[Piece, ...]
    model_type: ModelType
    byte_fallback: bool
    treat_whitespace_as_suffix: bool
    unk_surface: str
    normalizer: NormalizerSpec
    denormalizer: NormalizerSpec


class _Truncated(Exception):
    """Raised inside the reader; `read_spm` turns it into a one-line error naming the file."""


def read_spm(path: Path) -> SpmModel:
    """Parse `path`; a corrupt or truncated file is an LmtuiError naming it, never a traceback."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise LmtuiError(f"{path}: cannot read SentencePiece model ({e.strerror or e})") from None
    try:
        model = _model(data)
    except (_Truncated, UnicodeDecodeError, ValueError) as e:
        raise LmtuiError(f"{path}: not a valid SentencePiece model ({e})") from None
    if not model.pieces:
        raise LmtuiError(f"{path}: not a valid SentencePiece model (it has no pieces)")
    return model


def _model(data: bytes) -> SpmModel:
    pieces: list[Piece] = []
    trainer: dict[int, int | bytes] = {}
    normalizer = denormalizer = NormalizerSpec()
    for number, value in _fields(data):
        if number == 1:
            pieces.append(_piece(_bytes(value)))
        elif number == 2:
            trainer.update(_fields(_bytes(value)))  # only scalar fields are kept; the last one wins, as in protobuf
        elif number == 3:
            normalizer = _normalizer(_bytes(value))
        elif number == 5:
            denormalizer = _normalizer(_bytes(value))
    model_type = _int(trainer.get(3, ModelType.UNIGRAM))
    if model_type not in ModelType._value2member_map_:
        raise ValueError(f"unknown model type {model_type}")
    return SpmModel(tuple(pieces), ModelType(model_type), bool(_int(trainer.get(35, 0))),
                    bool(_int(trainer.get(24, 0))), _bytes(trainer.get(44, DEFAULT_UNK_SURFACE.encode())).decode(),
                    normalizer, denormalizer)


def _piece(data: bytes) -> Piece:
    fields = dict(_fields(data))
    kind = _int(fields.get(3, PieceType.NORMAL))
    if kind not in PieceType._value2member_map_:
        raise ValueError(f"unknown piece type {kind}")
    score = struct.unpack("<f", _fixed(fields.get(2, b"\0\0\0\0"), 4))[0]
    return Piece(_bytes(fields.get(1, b"")).decode(), score, PieceType(kind))


def _normalizer(data: bytes) -> NormalizerSpec:
    fields = dict(_fields(data))
    flag = {n: bool(_int(fields[n])) for n in (3, 4, 5) if n in fields}
    return NormalizerSpec(name=_bytes(fields.get(1, b"")).decode(), precompiled_charsmap=_bytes(fields.get(2, b"")),
                          add_dummy_prefix=flag.get(3, True), remove_extra_whitespaces=flag.get(4, True),
                          escape_whitespaces=flag.get(5, True))


def _fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value): an int for varints, raw bytes for fixed-width and length-delimited values."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError("field number 0")
        if wire == 0:
            value, pos = _varint(data, pos)
            yield number, value
            continue
        if wire == 2:
            size, pos = _varint(data, pos)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos + size > len(data):
            raise _Truncated("truncated")
        yield number, data[pos:pos + size]
        pos += size


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise _Truncated("truncated")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _int(value: int | bytes) -> int:
    if not isinstance(value, int):
        raise ValueError("a number field holds bytes")
    return value


def _bytes(value: int | bytes) -> bytes:
    if not isinstance(value, bytes):
        raise ValueError("a text field holds a number")
    return value


def _fixed(value: int | bytes, size: int) -> bytes:
    if not isinstance(value, bytes) or len(value) != size:
        raise ValueError("a fixed-width field has the wrong width")
    return value
