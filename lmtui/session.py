"""One loaded model and its tokenizer; the Python API that the CLI and the app are both built on.

Everything returned here is plain data (dataclasses of str/int/float), so faces never touch torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from lmtui import masked
from lmtui.checkpoint import Checkpoint, model_or_default, open_checkpoint
from lmtui.decoding.settings import GenerationSettings, settings_from_defaults
from lmtui.errors import InvalidOption, LmtuiError
from lmtui.generation import GenerateResult, GenerationRun, check_length, prompt_token_ids
from lmtui.generation_defaults import GenerationDefaults, load_generation_defaults
from lmtui.inspect.attention import AttentionView, record
from lmtui.inspect.inputs import TokenInputs
from lmtui.loss import LossResult, score_tokens
from lmtui.masked import MaskPrediction
from lmtui.models import family_for
from lmtui.models.layers import attention_backend
from lmtui.models.loading import Progress, load_model
from lmtui.tokenizer import Tokenizer, load_tokenizer

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: str
    family: str
    model_type: str
    kind: str  # decoder, encoder or encoder-decoder
    parameters: int
    layers: int  # decoder layers for an encoder-decoder
    encoder_layers: int | None  # only for encoder-decoders
    heads: int
    kv_heads: int
    hidden_size: int
    vocab_size: int
    context_length: int
    dtype: str
    device: str
    attention_backend: str
    tokenizer: str
    file_size: int


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise LmtuiError("--device cuda: no CUDA device is available (this PyTorch build or machine has none)")
    if name not in ("cpu", "cuda"):
        raise LmtuiError(f"--device must be auto, cpu or cuda, not {name!r}")
    return torch.device(name)


def resolve_dtype(name: str) -> torch.dtype | None:
    """None keeps the checkpoint's own dtype."""
    if name == "auto":
        return None
    if name not in DTYPES:
        raise LmtuiError(f"--dtype must be auto, {', '.join(DTYPES)}, not {name!r}")
    return DTYPES[name]


class Session:
    """A model, its tokenizer and generation defaults, loaded once and used by every command."""

    def __init__(
        self,
        model: str | Path | None = None,
        device: str = "auto",
        dtype: str = "auto",
        progress: Progress | None = None,
    ) -> None:
        self.device = resolve_device(device)
        self.checkpoint: Checkpoint = open_checkpoint(model_or_default(model))
        self.tokenizer: Tokenizer = load_tokenizer(self.checkpoint.folder)
        self.generation: GenerationDefaults = load_generation_defaults(
            self.checkpoint.folder, self.checkpoint.config
        )
        self.family = family_for(self.checkpoint.config)
        self.model = load_model(self.checkpoint, resolve_dtype(dtype), self.device, progress)
        self._last_run: GenerationRun | None = None

    @property
    def kind(self) -> str:
        """decoder, encoder or encoder-decoder: what the model can be asked to do."""
        return str(self.family.KIND)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def settings(self, prompt: str, **options: object) -> tuple[list[int], GenerationSettings]:
        """The prompt's token ids and the validated settings a run with these options would use.

        Options are GenerationSettings fields; None means "not given" (the checkpoint's default).
        """
        bos = self.generation.bos_token_id
        if bos is None and self.tokenizer.special.bos is not None:
            bos = self.tokenizer.special.bos.id
        ids = prompt_token_ids(self.tokenizer, prompt, bos)
        decoder_prompt_len = 1 if self.kind == "encoder-decoder" else len(ids)
        settings = settings_from_defaults(self.generation, decoder_prompt_len, **options)
        context = self.model.config.context_length if self.family.HARD_CONTEXT else None
        check_length(len(ids), decoder_prompt_len, settings, context)
        return ids, settings

    @property
    def decoder_start_id(self) -> int | None:
        """The token an encoder-decoder's decoder reads first."""
        start = self.generation.decoder_start_token_id
        return start if start is not None else self.generation.bos_token_id

    def stream(self, prompt: str, **options: object) -> GenerationRun:
        """Iterate over the returned run for text as it is produced; its `result` is set at the end."""
        ids, settings = self.settings(prompt, **options)
        self._last_run = GenerationRun(self.model, self.kind, self.tokenizer, prompt, ids, settings,
                                       self.decoder_start_id)
        return self._last_run

    def generate(self, prompt: str, **options: object) -> GenerateResult:
        run = self.stream(prompt, **options)
        for _ in run:
            pass
        assert run.result is not None
        return run.result

    def fill_mask(self, text: str, top_k: int = 5) -> list[MaskPrediction]:
        """The top_k candidates for every mask token in `text`; needs an encoder with an MLM head."""
        return masked.fill_mask(self.model, self.tokenizer, text, top_k)

    @property
    def last(self) -> GenerateResult | None:
        """The last finished generation, so its prompt and output can be inspected without retyping."""
        return self._last_run.result if self._last_run is not None else None

    def inputs(self, text: str, target: str | None = None) -> TokenInputs:
        """The ids inspection reads for typed text: encoded as `generate` encodes a prompt, and an
        encoder-decoder's target as the tokenizer encodes a target (with its special tokens)."""
        if self.kind == "decoder":
            bos = self.generation.bos_token_id
            if bos is None and self.tokenizer.special.bos is not None:
                bos = self.tokenizer.special.bos.id
            ids = tuple(prompt_token_ids(self.tokenizer, text, bos))
        else:
            ids = self.tokenizer.encode(text).ids
        if target is None:
            return TokenInputs(ids)
        if self.kind != "encoder-decoder":
            article = "an" if self.kind == "encoder" else "a"
            raise InvalidOption(f"a target is read only by encoder-decoders; this model is {article} {self.kind}")
        return TokenInputs(ids, self.tokenizer.encode_target(target).ids)

    def attention(self, text: str | TokenInputs, target: str | None = None, pad_to: int = 0) -> AttentionView:
        """Run the model once on the text (or ids) and keep what each head's map is computed from.

        An encoder-decoder shows encoder attention alone without a target, and decoder self- and
        cross-attention too with one (teacher forced). `pad_to` pads the text as a batch would, to
        show the padding mask: with the pad token, or eos where there is none (as transformers does).
        """
        inputs = text if isinstance(text, TokenInputs) else self.inputs(text, target)
        self.check_context(TokenInputs(inputs.ids + (0,) * max(0, pad_to - len(inputs.ids)), inputs.target_ids))
        pad = self.tokenizer.special.pad or self.tokenizer.special.eos
        return record(self.model, self.kind, inputs, self.decoder_start_id, self._piece, self._source_piece,
                      pad_to, pad.id if pad is not None else None)

    def check_context(self, inputs: TokenInputs) -> None:
        """Refuse inputs longer than the model's positions reach, before any work is done."""
        if not self.family.HARD_CONTEXT:
            return
        context = self.model.config.context_length
        for side, ids in (("text", inputs.ids), ("target", inputs.target_ids or ())):
            if len(ids) > context:
                raise InvalidOption(f"the {side} is {len(ids)} tokens; this model reads at most {context}")

    def _piece(self, id: int) -> str:
        return self.tokenizer.id_to_piece(id) or ""

    def _source_piece(self, id: int) -> str:
        return self.tokenizer.source_piece(id) or ""

    def last_inputs(self) -> TokenInputs:
        """The last generation's first sequence as inspection input (`TokenInputs.of_generation`)."""
        last = self.last
        if last is None:
            raise InvalidOption("nothing has been generated yet in this session")
        return TokenInputs.of_generation(self.kind, last)

    def loss(self, text: str | TokenInputs, target: str | None = None, label_smoothing: float = 0.0) -> LossResult:
        """Teacher-forced loss of typed text (an encoder-decoder's target given its source), or of ids
        such as `last_inputs()`, which are scored as they are."""
        if isinstance(text, TokenInputs) and target is not None:
            raise InvalidOption("give the target inside the TokenInputs, not beside them")
        inputs = text if isinstance(text, TokenInputs) else self.inputs(text, target)
        self.check_context(inputs)
        return score_tokens(self.model, self.kind, self.tokenizer, inputs, label_smoothing, self.decoder_start_id)

    def info(self) -> ModelInfo:
        config = self.model.config
        return ModelInfo(
            name=self.checkpoint.name,
            path=str(self.checkpoint.folder),
            family=self.family.__name__.rsplit(".", 1)[-1],
            model_type=str(self.checkpoint.config["model_type"]),
            kind=self.kind,
            parameters=sum(p.numel() for p in self.model.parameters()),
            layers=config.n_layers,
            encoder_layers=getattr(config, "n_encoder_layers", None),
            heads=config.n_heads,
            kv_heads=config.n_kv_heads,
            hidden_size=config.hidden_size,
            vocab_size=config.vocab_size,
            context_length=config.context_length,
            dtype=str(self.dtype).removeprefix("torch."),
            device=str(self.device),
            attention_backend=attention_backend(self.device, self.dtype),
            tokenizer=self.tokenizer.kind,
            file_size=self.checkpoint.file_size,
        )
