"""A checkpoint's tokenizer, built with the `tokenizers` library exactly as transformers 5 builds it.

transformers is a test dependency only, so this module redoes the part of `AutoTokenizer` that decides
which ids a prompt becomes: which files it reads, which tokenizer class it picks, the pipeline that
class rebuilds around the vocabulary, and which special tokens it adds. No torch here: the TUI
tokenizes before the model loads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tokenizers import AddedToken, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers import Tokenizer as Backend

from lmtui.errors import LmtuiError
from lmtui.jsonfile import read_json_object

T = TypeVar("T")
SPECIAL_NAMES = ("bos", "eos", "pad", "unk", "mask", "cls", "sep")

# Which class AutoTokenizer uses for a config's model_type when tokenizer_config.json names none.
_CLASS_BY_MODEL_TYPE = {"gpt2": "GPT2Tokenizer", "llama": None, "mistral": "TokenizersBackend",
                        "qwen2": "Qwen2Tokenizer", "bert": "BertTokenizer", "distilbert": "BertTokenizer",
                        "roberta": "RobertaTokenizer", "bart": "RobertaTokenizer", "t5": "T5Tokenizer"}
_HUB_CLASS_IGNORED = {"qwen2"}  # transformers distrusts the tokenizer_class these checkpoints declare
_ALIASES = {"BartTokenizer": "RobertaTokenizer", "DistilBertTokenizer": "BertTokenizer",
            "PreTrainedTokenizer": "TokenizersBackend", "PreTrainedTokenizerFast": "TokenizersBackend"}
# Special tokens each class assumes when the checkpoint's files do not name them.
_CLASS_DEFAULTS: dict[str, dict[str, str]] = {
    "GPT2Tokenizer": {"unk": "<|endoftext|>", "bos": "<|endoftext|>", "eos": "<|endoftext|>"},
    "RobertaTokenizer": {"bos": "<s>", "eos": "</s>", "sep": "</s>", "cls": "<s>", "unk": "<unk>",
                         "pad": "<pad>", "mask": "<mask>"},
    "BertTokenizer": {"unk": "[UNK]", "sep": "[SEP]", "pad": "[PAD]", "cls": "[CLS]", "mask": "[MASK]"},
    "LlamaTokenizer": {"unk": "<unk>", "bos": "<s>", "eos": "</s>"},
}
_SPM_HINT = ("lmtui needs tokenizer.json; make it once with transformers installed: python -c \"from "
             "transformers import AutoTokenizer as T; T.from_pretrained('{0}').save_pretrained('{0}')\"")


@dataclass(frozen=True)
class SpecialToken:
    text: str
    id: int


@dataclass(frozen=True)
class SpecialTokens:
    """The named special tokens; any may be missing (GPT-2 has no pad, Llama no mask)."""

    bos: SpecialToken | None = None
    eos: SpecialToken | None = None
    pad: SpecialToken | None = None
    unk: SpecialToken | None = None
    mask: SpecialToken | None = None
    cls: SpecialToken | None = None
    sep: SpecialToken | None = None


@dataclass(frozen=True)
class Encoding:
    """Token ids with what the UI shows next to them; offsets are character offsets into the text."""

    ids: tuple[int, ...]
    pieces: tuple[str, ...]
    offsets: tuple[tuple[int, int], ...]
    special: tuple[bool, ...]


class Tokenizer:
    """A loaded `tokenizers` backend plus the special tokens and decode settings transformers keeps beside it."""

    def __init__(self, backend: Backend, special: SpecialTokens, clean_up_spaces: bool = False) -> None:
        self.backend = backend
        self.special = special
        self._clean_up_spaces = clean_up_spaces and type(backend.model).__name__ != "BPE"
        added = backend.get_added_tokens_decoder()
        self._special_ids = frozenset(i for i, token in added.items() if token.special)

    @property
    def kind(self) -> str:
        """A label for the algorithm, because "BPE" alone hides whether it works on bytes (GPT-2) or ▁ (Llama)."""
        model = type(self.backend.model).__name__
        if model == "BPE" and _is_byte_level(self.backend):
            return "byte-level BPE"
        return model

    @property
    def vocab_size(self) -> int:
        """Every id the tokenizer can produce, added tokens included (the model's embedding may be larger)."""
        return self.backend.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, add_special_tokens: bool = True) -> Encoding:
        """Encode as transformers does; `special` also marks special tokens typed into the text itself."""
        enc = self.backend.encode(text, add_special_tokens=add_special_tokens)
        special = tuple(bool(m) or i in self._special_ids for i, m in zip(enc.ids, enc.special_tokens_mask))
        # Pieces from the vocabulary, not enc.tokens: Unigram reports an unknown token's text there, not "<unk>".
        pieces = tuple(self.backend.id_to_token(i) or "" for i in enc.ids)
        return Encoding(tuple(enc.ids), pieces, tuple(enc.offsets), special)

    def encode_target(self, text: str) -> Encoding:
        """An encoder-decoder's decoder-side text, as `tokenizer(text_target=...)` encodes it."""
        return self.encode(text)

    @property
    def target_backend(self) -> Backend:
        """The backend that segments decoder-side text: the same one unless each side has its own model."""
        return self.backend

    def decode(self, ids: list[int] | tuple[int, ...], skip_special_tokens: bool = False) -> str:
        """Decode; ids past the tokenizer's vocabulary (padded embeddings) are dropped, not an error."""
        known = [i for i in ids if 0 <= i < 2**32]  # the backend takes u32 ids and raises on others
        text = self.backend.decode(known, skip_special_tokens=skip_special_tokens)
        return _clean_up_tokenization(text) if self._clean_up_spaces else text

    def id_to_piece(self, id: int) -> str | None:
        """None for ids the tokenizer does not know, which a model with a padded vocabulary can produce."""
        return self.backend.id_to_token(id) if 0 <= id < 2**32 else None

    def piece_to_id(self, piece: str) -> int | None:
        return self.backend.token_to_id(piece)

    def source_piece(self, id: int) -> str | None:
        """An encoder-side id's piece: differs from `id_to_piece` only where each side has its own vocabulary."""
        return self.id_to_piece(id)


def load_tokenizer(folder: Path) -> Tokenizer:
    """Load the tokenizer of a Hugging Face model folder the way `AutoTokenizer.from_pretrained` would."""
    folder = Path(folder)
    settings = read_json_object(folder / "tokenizer_config.json", required=False)
    config = read_json_object(folder / "config.json", required=False)
    json_file = folder / "tokenizer.json"
    if json_file.is_file():
        backend = _call(json_file, lambda: Backend.from_file(str(json_file)))
        klass = _tokenizer_class(settings, config, byte_level_json=_is_byte_level(backend))
        settings.pop("add_bos_token", None)  # transformers ignores both when tokenizer.json exists
        settings.pop("add_eos_token", None)
    elif (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
        klass = _tokenizer_class(settings, config, byte_level_json=False)
        klass = klass if klass == "RobertaTokenizer" else "GPT2Tokenizer"
        backend = _byte_level_bpe(folder / "vocab.json", folder / "merges.txt")
    elif (folder / "vocab.txt").is_file():
        klass = "BertTokenizer"
        vocab = _call(folder / "vocab.txt", lambda: models.WordPiece.read_file(str(folder / "vocab.txt")))
        unk = _added_token(settings.get("unk_token") or "[UNK]", {}, special=True).content
        backend = Backend(models.WordPiece(vocab, unk_token=unk))
    elif (folder / "source.spm").is_file():  # Marian: SentencePiece files + vocab.json, no tokenizer.json
        from lmtui.marian_tokenizer import load_marian_tokenizer  # here, as it imports this module

        return load_marian_tokenizer(folder, settings)
    else:
        raise _missing_files_error(folder)
    tokens_map = read_json_object(folder / "special_tokens_map.json", required=False)
    # Odd special tokens (a space in one breaks a template) fail while finishing: blame the settings file.
    return _call(folder / "tokenizer_config.json", lambda: _finish(backend, klass, settings, tokens_map, config))


def _finish(backend: Backend, klass: str, settings: dict[str, Any], tokens_map: dict[str, Any],
            config: dict[str, Any]) -> Tokenizer:
    """Apply what the tokenizer class does around the vocabulary, in the order transformers does it."""
    _set_class_pipeline(backend, klass, settings)
    named = _named_special_tokens(klass, settings, tokens_map)
    _add_special_tokens(backend, named, settings)
    if backend.post_processor is None:
        backend.post_processor = _bos_eos_template(backend, named, settings)
    cls, sep = (str(named[n]) if named[n] is not None else None for n in ("cls", "sep"))
    if klass == "RobertaTokenizer" and cls and sep:  # encoder classes always impose their own template
        backend.post_processor = processors.RobertaProcessing(
            (sep, backend.token_to_id(sep)), (cls, backend.token_to_id(cls)),
            trim_offsets=_setting(settings, "trim_offsets", True),
            add_prefix_space=_setting(settings, "add_prefix_space", False))
    elif klass == "BertTokenizer" and cls and sep:
        backend.post_processor = processors.TemplateProcessing(
            single=f"{cls}:0 $A:0 {sep}:0", pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1",
            special_tokens=[(cls, backend.token_to_id(cls)), (sep, backend.token_to_id(sep))])
    special = _special_tokens(backend, named, config)
    return Tokenizer(backend, special, clean_up_spaces=bool(settings.get("clean_up_tokenization_spaces")))


def _tokenizer_class(settings: dict[str, Any], config: dict[str, Any], byte_level_json: bool) -> str:
    """Pick the class AutoTokenizer would pick, because each class rebuilds the pipeline its own way."""
    model_type = config.get("model_type")
    registered = _CLASS_BY_MODEL_TYPE.get(model_type) if isinstance(model_type, str) else None
    declared = settings.get("tokenizer_class") or config.get("tokenizer_class")
    if not isinstance(declared, str):
        return registered or "TokenizersBackend"
    name = _ALIASES.get(declared.removesuffix("Fast"), declared.removesuffix("Fast"))
    if name == "LlamaTokenizer" and byte_level_json:  # Llama 3 style files: kept as they are
        return "TokenizersBackend"
    if registered is not None and registered != name:
        return registered if model_type in _HUB_CLASS_IGNORED or registered == "TokenizersBackend" else name
    return name


def _set_class_pipeline(backend: Backend, klass: str, settings: dict[str, Any]) -> None:
    """Replace normalizer, pre-tokenizer and decoder as the class's __init__ does (it ignores tokenizer.json's)."""
    if klass in ("GPT2Tokenizer", "RobertaTokenizer"):
        backend.normalizer = None
        prefix = _setting(settings, "add_prefix_space", False)
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=prefix)
        backend.decoder = decoders.ByteLevel()
    elif klass == "BertTokenizer":
        backend.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=_setting(settings, "tokenize_chinese_chars", True),
            strip_accents=settings.get("strip_accents"), lowercase=_setting(settings, "do_lower_case", True))
        backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        backend.decoder = decoders.WordPiece(prefix="##")
    elif klass == "LlamaTokenizer":
        prefix = _setting(settings, "add_prefix_space", True)
        scheme = ("first" if not _setting(settings, "legacy", False) else "always") if prefix else "never"
        backend.normalizer = None
        backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=scheme, split=False)
        steps = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
        backend.decoder = decoders.Sequence(steps + ([decoders.Strip(" ", 1, 0)] if prefix else []))


def _named_special_tokens(klass: str, settings: dict[str, Any],
                          tokens_map: dict[str, Any]) -> dict[str, AddedToken | None]:
    """bos/eos/... as transformers resolves them: class default < special_tokens_map < tokenizer_config."""
    declared = _declared_added_tokens(settings)
    merged = dict(settings) if "added_tokens_decoder" in settings else {**settings, **tokens_map}
    named: dict[str, AddedToken | None] = {}
    for name in SPECIAL_NAMES:
        value = merged.get(f"{name}_token", _CLASS_DEFAULTS.get(klass, {}).get(name))
        named[name] = _added_token(value, declared, special=True) if value is not None else None
    return named


def _add_special_tokens(backend: Backend, named: dict[str, AddedToken | None], settings: dict[str, Any]) -> None:
    """Add declared and named special tokens the backend lacks, so that typing one in text yields its id."""
    present = {str(token) for token in backend.get_added_tokens_decoder().values()}
    declared = _declared_added_tokens(settings)
    extras = settings.get("extra_special_tokens") or settings.get("additional_special_tokens") or []
    extras = list(extras.values()) if isinstance(extras, dict) else [extras] if isinstance(extras, str) else extras
    wanted = [*declared.values(), *(t for t in named.values() if t is not None),
              *(_added_token(e, declared, special=True) for e in extras if e is not None)]
    to_add: list[AddedToken] = []
    for token in wanted:
        if str(token) not in present:
            present.add(str(token))
            to_add.append(token)
    if to_add:
        backend.add_tokens(to_add)


def _bos_eos_template(backend: Backend, named: dict[str, AddedToken | None],
                      settings: dict[str, Any]) -> processors.TemplateProcessing:
    """The template transformers builds when no post-processor exists; add_bos/add_eos_token switch its ends on."""
    bos, eos = (named[n] if settings.get(f"add_{n}_token") else None for n in ("bos", "eos"))
    head, tail = bos is not None, eos is not None
    single = " ".join([*([f"{bos}:0"] if head else []), "$A:0", *([f"{eos}:0"] if tail else [])])
    pair = " ".join([single, *([f"{bos}:1"] if head else []), "$B:1", *([f"{eos}:1"] if tail else [])])
    specials = [(str(t), backend.token_to_id(str(t))) for t in (bos, eos) if t is not None]
    return processors.TemplateProcessing(single=single, pair=pair, special_tokens=specials)


def _special_tokens(backend: Backend, named: dict[str, AddedToken | None], config: dict[str, Any]) -> SpecialTokens:
    """Resolve texts to ids; where the tokenizer names none, fall back to config.json's *_token_id."""
    found: dict[str, SpecialToken | None] = {}
    for name in SPECIAL_NAMES:
        token = named[name]
        token_id = backend.token_to_id(str(token)) if token is not None else None
        if token is not None and token_id is not None:
            found[name] = SpecialToken(str(token), token_id)
            continue
        config_id = config.get(f"{name}_token_id")
        config_id = config_id[0] if isinstance(config_id, list) and config_id else config_id
        text = backend.id_to_token(config_id) if isinstance(config_id, int) and config_id >= 0 else None
        found[name] = SpecialToken(text, config_id) if text is not None else None
    return SpecialTokens(**found)


def _byte_level_bpe(vocab_file: Path, merges_file: Path) -> Backend:
    """The BPE model GPT2Tokenizer/RobertaTokenizer build from vocab.json + merges.txt."""
    where = f"{vocab_file} + {merges_file.name}"
    vocab, merges = _call(where, lambda: models.BPE.read_file(str(vocab_file), str(merges_file)))
    return Backend(models.BPE(vocab, merges, dropout=None, continuing_subword_prefix="",
                              end_of_word_suffix="", fuse_unk=False))


def _declared_added_tokens(settings: dict[str, Any]) -> dict[int, AddedToken]:
    raw = settings.get("added_tokens_decoder")
    if not isinstance(raw, dict):
        return {}
    return {int(i): _added_token(t, {}, special=False) for i, t in raw.items() if str(i).isdigit()}


def _added_token(value: Any, declared: dict[int, AddedToken], special: bool) -> AddedToken:
    """Accept "text" or {"content": ...}; a text listed in added_tokens_decoder keeps the flags given there.

    `special=True` (a named token) forces the flag on, as transformers does for bos/eos/... whatever the file says.
    """
    if not isinstance(value, dict):
        match = [t for t in declared.values() if str(t) == str(value)]
        if not match:
            return AddedToken(str(value), special=special, normalized=not special)
        t = match[0]
        value = {"content": t.content, "single_word": t.single_word, "lstrip": t.lstrip, "rstrip": t.rstrip,
                 "normalized": t.normalized, "special": t.special}
    flags = {k: bool(value[k]) for k in ("single_word", "lstrip", "rstrip", "normalized", "special") if k in value}
    flags["special"] = special or flags.get("special", False)
    return AddedToken(str(value.get("content", "")), **flags)


def _setting(settings: dict[str, Any], key: str, default: bool) -> bool:
    """A boolean setting where an explicit null means the class default (transformers' signatures do that)."""
    value = settings.get(key)
    return default if value is None else bool(value)


def _is_byte_level(backend: Backend) -> bool:
    parts = (backend.pre_tokenizer, backend.decoder)
    return any(p is not None and b'"ByteLevel"' in p.__getstate__() for p in parts)


def _clean_up_tokenization(text: str) -> str:
    """transformers' clean_up_tokenization, which WordPiece checkpoints switch on in tokenizer_config.json."""
    for before, after in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                          (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        text = text.replace(before, after)
    return text


def _call(path: Path | str, build: Callable[[], T]) -> T:
    """Run a `tokenizers` loader; its errors are plain Exceptions, so turn them into one line naming the file."""
    try:
        return build()
    except LmtuiError:
        raise
    except Exception as e:  # the tokenizers library raises bare Exception for bad files
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise LmtuiError(f"{path}: not a valid tokenizer file ({reason})") from None


def _missing_files_error(folder: Path) -> LmtuiError:
    spm = sorted(p.name for p in (*folder.glob("*.model"), *folder.glob("*.spm")))
    if spm:
        return LmtuiError(f"{folder}: only a SentencePiece model ({', '.join(spm)}); " + _SPM_HINT.format(folder))
    return LmtuiError(f"{folder}: no tokenizer found (looked for tokenizer.json, vocab.json + merges.txt, vocab.txt)")
