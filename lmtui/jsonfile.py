"""Reading the JSON files of a checkpoint folder, with one-line errors that name the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lmtui.errors import LmtuiError


def read_json_object(path: Path, required: bool = True) -> dict[str, Any]:
    """The JSON object in `path`; {} for a missing optional file; LmtuiError for a broken one."""
    if not path.is_file():
        if required:
            raise LmtuiError(f"{path.parent} has no {path.name}")
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise LmtuiError(f"{path} is not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise LmtuiError(f"{path} is not a JSON object (found {type(data).__name__})")
    return data
