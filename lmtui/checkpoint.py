"""Find a checkpoint (folder, file or cached Hub id) and index its safetensors without reading weights.

Only safetensors are ever opened: pickle files (`pytorch_model.bin`, `*.pt`) can run code when
loaded, so a folder that has nothing else is refused with the way to convert it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open

from lmtui.errors import LmtuiError
from lmtui.jsonfile import read_json_object

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
SINGLE_FILE = "model.safetensors"
SHARD_INDEX = "model.safetensors.index.json"
WEIGHTS = Path(__file__).resolve().parent.parent / "weights"  # the bundled checkpoints
DEFAULT_MODEL = WEIGHTS / "tiny-gpt"
DEFAULT_ENCODER = WEIGHTS / "tiny-bert"  # what fill-mask opens when no model is named
EXAMPLES = {  # a text each bundled model does something sensible with, and a target for tiny-seq2seq
    "tiny-gpt": ("The with statement", None),
    "tiny-bert": ("Return [MASK] if the object is callable, False otherwise.", None),
    "tiny-seq2seq": ("three hundred and forty-two", "342"),
}


def bundled_example(folder: str | Path) -> tuple[str, str | None] | None:
    """What to suggest typing into a bundled model (None for any other folder)."""
    path = Path(folder).resolve()
    return EXAMPLES.get(path.name) if path.parent == WEIGHTS else None


@dataclass(frozen=True)
class TensorEntry:
    """Where one tensor lives and what it looks like, read from the safetensors header only."""

    file: Path
    shape: tuple[int, ...]
    dtype: str  # safetensors' name: "F32", "BF16", ...


@dataclass(frozen=True)
class Checkpoint:
    folder: Path
    name: str  # what the user typed, or the folder's name
    config: dict[str, Any]
    tensors: dict[str, TensorEntry]

    @property
    def files(self) -> tuple[Path, ...]:
        return tuple(sorted({entry.file for entry in self.tensors.values()}))

    @property
    def file_size(self) -> int:
        return sum(path.stat().st_size for path in self.files)


def open_checkpoint(model: str | Path) -> Checkpoint:
    """Resolve `model` to a folder, read its config and index every tensor it holds."""
    folder = resolve_folder(model)
    files = weight_files(folder)  # first: a pickle-only folder is refused for that, whatever else it lacks
    config = read_json_object(folder / "config.json")
    return Checkpoint(folder, str(model), config, index_tensors(files))


def model_or_default(model: str | Path | None, default: Path | None = None) -> str | Path:
    """The model asked for, or a bundled one when none is (`default`, else DEFAULT_MODEL)."""
    if model is not None:
        return model
    default = default if default is not None else DEFAULT_MODEL
    if not default.is_dir():
        raise LmtuiError(f"no --model given and the bundled model {default} is not there")
    return default


def resolve_folder(model: str | Path) -> Path:
    """A folder, a `.safetensors` file inside one, or a Hub id already in the local cache."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if path.is_file():
        if path.suffix in PICKLE_SUFFIXES:
            raise pickle_refusal(path)
        if path.suffix != ".safetensors":
            raise LmtuiError(f"{path} is not a .safetensors file or a model folder")
        return path.parent
    return cached_hub_folder(str(model))


def cached_hub_folder(repo_id: str) -> Path:
    """The snapshot folder of a Hub id in HF_HOME/HF_HUB_CACHE; never touches the network."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except HFValidationError:
        raise LmtuiError(f"{repo_id}: no such file or folder") from None
    except (LocalEntryNotFoundError, OSError):
        raise LmtuiError(
            f"{repo_id}: no such folder, and not in the Hugging Face cache "
            "(lmtui never downloads; fetch it first with `hf download " + repo_id + "`)"
        ) from None


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files that hold the weights: one file, or the shards an index names."""
    single = folder / SINGLE_FILE
    if single.is_file():
        return [single]
    index_path = folder / SHARD_INDEX
    if index_path.is_file():
        weight_map = read_json_object(index_path).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise LmtuiError(f"{index_path} has no weight_map")
        shards = sorted({folder / str(name) for name in weight_map.values()})
        missing = [shard.name for shard in shards if not shard.is_file()]
        if missing:
            raise LmtuiError(f"{index_path.name} names shards that are not in {folder}: {', '.join(missing)}")
        return shards
    others = sorted(folder.glob("*.safetensors"))
    if others:
        return others
    pickles = sorted(p for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise pickle_refusal(pickles[0])
    raise LmtuiError(f"{folder} has no {SINGLE_FILE} (or shards with {SHARD_INDEX})")


def pickle_refusal(path: Path) -> LmtuiError:
    return LmtuiError(
        f"{path.name} is a pickle file, which can run arbitrary code when loaded; lmtui loads only "
        "safetensors. Convert it once where you trust it: "
        f"`AutoModelForCausalLM.from_pretrained('{path.parent}').save_pretrained(OUT)` in transformers"
    )


def index_tensors(files: list[Path]) -> dict[str, TensorEntry]:
    """Read every file's header (names, shapes, dtypes); a truncated or corrupt file fails here."""
    tensors: dict[str, TensorEntry] = {}
    for path in files:
        try:
            with safe_open(path, framework="pt") as handle:
                for name in handle.keys():
                    view = handle.get_slice(name)
                    tensors[name] = TensorEntry(path, tuple(view.get_shape()), view.get_dtype())
        except (SafetensorError, OSError) as error:
            raise LmtuiError(f"{path.name} is not a readable safetensors file ({error})") from None
    return tensors


def read_tensors(tensors: dict[str, TensorEntry], device: str = "cpu") -> Iterator[tuple[str, Any]]:
    """Yield (name, tensor) file by file through memory-mapped `safe_open` reads."""
    by_file: dict[Path, list[str]] = {}
    for name, entry in tensors.items():
        by_file.setdefault(entry.file, []).append(name)
    for path, names in by_file.items():
        try:
            with safe_open(path, framework="pt", device=device) as handle:
                for name in names:
                    yield name, handle.get_tensor(name)
        except SafetensorError as error:
            raise LmtuiError(f"{path.name}: {error}") from None
