"""Train `weights/tiny-gpt`, the small GPT-2 that lmtui opens when no `-m/--model` is given.

The corpus is Python's own documentation, bundled with every Python install: the language-reference
topics in `pydoc_data.topics` plus the docstrings of the standard library's modules, classes and
functions. It needs no network, it is PSF-licensed text, and it is English prose in one consistent
style, so a 2.6M-parameter model learns to write recognisable "Python docs" in minutes on a CPU.

    python scripts/train_tiny_gpt.py                          # rebuilds weights/tiny-gpt (~15 min, 2 cores)
    python scripts/train_tiny_gpt.py --smoke --out /tmp/tg    # a few steps on a tiny slice (seconds)

The model is lmtui's own `lmtui.models.gpt2.GPT2`, whose module names are `GPT2LMHeadModel`'s: its
state_dict, with the Conv1D weights transposed back to (in, out) and without the tied `lm_head.weight`,
is exactly what `GPT2LMHeadModel.save_pretrained` writes. transformers is used only for `GPT2Config`,
`GenerationConfig` and `GPT2TokenizerFast`, to write the JSON and tokenizer files as transformers writes
them. Everything is seeded and the corpus is sorted, so the same Python version and the same library
versions give the same checkpoint. Needs lmtui installed (`pip install -e '.[test]'`).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import io
import json
import math
import pkgutil
import random
import sys
import sysconfig
import tempfile
import time
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor, nn
from tqdm import tqdm

from lmtui.models import gpt2
from lmtui.session import Session

ROOT = Path(__file__).resolve().parent.parent
EOT = "<|endoftext|>"
PROMPTS = ("The with statement", "A list is", "Return the")
# Modules never imported: GUI toolkits, Easter eggs with side effects, the test suite, setuptools' shim.
SKIP_MODULES = {"antigravity", "this", "tkinter", "idlelib", "turtle", "turtledemo", "ensurepip", "venv",
                "pydoc_data", "lib2to3", "test", "distutils"}
MIN_DOC_CHARS = 40


# ----------------------------------------------------------------------------- corpus

def _import_quietly(name: str) -> ModuleType | None:
    """Import a module with its output swallowed; None when it fails or lives outside the stdlib folder."""
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            module = importlib.import_module(name)
    except BaseException:  # noqa: BLE001 - any failure (ImportError, SystemExit, OSError) means "skip it"
        return None
    file = getattr(module, "__file__", None)
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    if file is not None and stdlib not in Path(file).resolve().parents:
        return None  # shadowed by a site-packages module: not Python's own text
    return module


def stdlib_modules() -> list[ModuleType]:
    """Public stdlib modules and their public submodules, in sorted order."""
    modules = []
    for name in sorted(sys.stdlib_module_names):
        if name.startswith("_") or name in SKIP_MODULES or (module := _import_quietly(name)) is None:
            continue
        modules.append(module)
        for info in pkgutil.walk_packages(getattr(module, "__path__", []), name + ".", onerror=lambda _: None):
            parts = info.name.split(".")
            if any(p.startswith("_") or p in ("test", "tests") for p in parts):
                continue
            if (sub := _import_quietly(info.name)) is not None:
                modules.append(sub)
    return modules


def module_docstrings(module: ModuleType) -> list[str]:
    """The module's docstring and those of its own public classes, functions and methods."""
    docs = [module.__doc__ or ""]
    for name, value in sorted(vars(module).items()):
        if name.startswith("_") or getattr(value, "__module__", None) != module.__name__:
            continue
        if not (inspect.isclass(value) or inspect.isroutine(value)):
            continue
        docs.append(value.__doc__ or "")
        if inspect.isclass(value):
            docs += [getattr(m, "__doc__", None) or "" for a, m in sorted(vars(value).items())
                     if not a.startswith("_") and inspect.isroutine(m)]
    return docs


def build_corpus() -> list[str]:
    """Sorted, deduplicated documents: reference topics plus stdlib docstrings of >= MIN_DOC_CHARS."""
    from pydoc_data.topics import topics

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        docs = [text for module in stdlib_modules() for text in module_docstrings(module)]
    docs += list(topics.values())
    cleaned = {inspect.cleandoc(doc).strip() for doc in docs if isinstance(doc, str)}
    return sorted(doc for doc in cleaned if len(doc) >= MIN_DOC_CHARS)


def split_corpus(docs: list[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """A seeded shuffle, then the last `val_fraction` of documents held out for validation."""
    order = list(docs)
    random.Random(seed).shuffle(order)
    n_val = max(1, round(len(order) * val_fraction))
    return order[:-n_val], order[-n_val:]


# ----------------------------------------------------------------------------- tokenizer

def train_tokenizer(docs: list[str], vocab_size: int, context: int):
    """GPT-2-style byte-level BPE with <|endoftext|> as its only special token, wrapped as transformers saves it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import GPT2TokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(docs, trainer)
    return GPT2TokenizerFast(tokenizer_object=backend, bos_token=EOT, eos_token=EOT, unk_token=EOT,
                             model_max_length=context)


def token_stream(tokenizer, docs: list[str]) -> torch.Tensor:
    """All documents as one id stream, each followed by <|endoftext|>."""
    eot = tokenizer.convert_tokens_to_ids(EOT)
    ids: list[int] = []
    for encoded in tokenizer.backend_tokenizer.encode_batch(docs, add_special_tokens=False):
        ids += encoded.ids + [eot]
    return torch.tensor(ids, dtype=torch.long)


# ----------------------------------------------------------------------------- model and training

def gpt2_config(args: argparse.Namespace, vocab_size: int, eot: int) -> Any:
    """transformers' GPT2Config for the model trained here (no dropout: lmtui's model has none)."""
    from transformers import GPT2Config

    config = GPT2Config(vocab_size=vocab_size, n_positions=args.context, n_embd=args.hidden, n_layer=args.layers,
                        n_head=args.heads, bos_token_id=eot, eos_token_id=eot, tie_word_embeddings=True,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, architectures=["GPT2LMHeadModel"])
    config.dtype = "float32"
    return config


def build_model(config: dict[str, Any]) -> gpt2.GPT2:
    """lmtui's GPT2, initialised as GPT-2 is: normal std 0.02 (std 0.02 / sqrt(2 * layers) for the
    projections that write into the residual stream), zero biases, LayerNorm 1/0, lm_head tied to wte."""
    model = gpt2.GPT2(gpt2.Config.from_hf(config))
    std = config["initializer_range"]
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            scale = math.sqrt(2 * config["n_layer"]) if name.endswith("c_proj") else 1.0
            nn.init.normal_(module.weight, std=std / scale)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    model.lm_head.weight = model.transformer.wte.weight
    return model.train()


def lm_loss(model: gpt2.GPT2, ids: Tensor) -> Tensor:
    """Next-token cross-entropy over every position of ids (B, T)."""
    logits = model(ids)  # (B, T, vocab)
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())


def random_batch(data: Tensor, batch: int, context: int, gen: torch.Generator) -> Tensor:
    starts = torch.randint(0, len(data) - context, (batch,), generator=gen)
    return torch.stack([data[s:s + context] for s in starts.tolist()])  # (B, T)


def lr_at(step: int, args: argparse.Namespace) -> float:
    """Linear warmup, then cosine decay to a tenth of the peak."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = (step - args.warmup) / max(1, args.steps - args.warmup)
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def eval_loss(model: gpt2.GPT2, data: Tensor, args: argparse.Namespace) -> float:
    """Mean loss over consecutive, non-overlapping windows of `data` (at most --eval-batches batches)."""
    model.eval()
    n = (len(data) - 1) // args.context
    windows = data[: n * args.context].view(n, args.context)[: args.eval_batches * args.batch]  # (n, T)
    losses = [lm_loss(model, w).item() for w in windows.split(args.batch)]
    model.train()
    return sum(losses) / len(losses)


def train(model: gpt2.GPT2, train_ids: Tensor, val_ids: Tensor, args: argparse.Namespace) -> dict[str, float]:
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(args.seed)
    model.train()
    losses: dict[str, float] = {}
    bar = tqdm(range(args.steps), desc="training", unit="step", dynamic_ncols=True)
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, args)
        loss = lm_loss(model, random_batch(train_ids, args.batch, args.context, gen))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr_at(step, args):.1e}")
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            losses = {"train": eval_loss(model, train_ids, args), "validation": eval_loss(model, val_ids, args)}
            bar.write(f"step {step + 1}: train loss {losses['train']:.3f}, validation loss {losses['validation']:.3f}")
    return losses


# ----------------------------------------------------------------------------- saving

def generation_defaults(eot: int) -> dict[str, object]:
    """Greedy by default (so `lmtui generate` is deterministic) with a penalty that keeps it from looping."""
    return {"bos_token_id": eot, "eos_token_id": eot, "pad_token_id": eot, "do_sample": False,
            "max_new_tokens": 60, "repetition_penalty": 1.2, "no_repeat_ngram_size": 3}


def checkpoint_state(model: gpt2.GPT2) -> dict[str, Tensor]:
    """The state_dict as GPT2LMHeadModel saves it: Conv1D weights as (in, out), no tied lm_head."""
    state = {}
    for name, tensor in model.state_dict().items():
        if name in model.tied:
            continue
        tensor = tensor.detach()
        state[name] = (tensor.t() if gpt2.WEIGHTS.is_transposed(name) else tensor).contiguous()
    return state


def save(model: gpt2.GPT2, config: Any, tokenizer: Any, out: Path, eot: int) -> None:
    """config.json, generation_config.json, model.safetensors and the tokenizer files."""
    from transformers import GenerationConfig

    out.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(out)
    GenerationConfig(**generation_defaults(eot)).save_pretrained(out)
    save_file(checkpoint_state(model), str(out / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(out)


def print_samples(out: Path) -> None:
    """Greedy continuations of a few prompts, as `lmtui generate` writes them."""
    session = Session(out)
    for prompt in PROMPTS:
        print(f"--- {prompt!r}\n{prompt}{session.generate(prompt).sequences[0].text}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: weights/tiny-gpt; with --smoke a new temporary folder)")
    p.add_argument("--seed", type=int, default=0, help="seed for the split, initialisation and batches")
    p.add_argument("--vocab-size", type=int, default=4096, help="byte-level BPE vocabulary size")
    p.add_argument("--layers", type=int, default=4, help="transformer blocks")
    p.add_argument("--hidden", type=int, default=192, help="hidden size (n_embd)")
    p.add_argument("--heads", type=int, default=6, help="attention heads")
    p.add_argument("--context", type=int, default=256, help="context length and training sequence length")
    p.add_argument("--steps", type=int, default=1000, help="optimizer steps")
    p.add_argument("--batch", type=int, default=16, help="sequences per step")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    p.add_argument("--warmup", type=int, default=50, help="linear warmup steps")
    p.add_argument("--weight-decay", type=float, default=0.1, help="AdamW weight decay on matrices")
    p.add_argument("--val-fraction", type=float, default=0.02, help="share of documents held out")
    p.add_argument("--eval-every", type=int, default=100, help="steps between train/validation loss reports")
    p.add_argument("--eval-batches", type=int, default=8, help="batches per loss estimate")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--smoke", action="store_true",
                   help="a quick check: 40 documents, vocab 300, a 2-layer model, 5 steps, no samples")
    args = p.parse_args(argv)
    if args.smoke:
        args.vocab_size, args.layers, args.hidden, args.heads, args.context = 300, 2, 32, 2, 32
        args.steps, args.batch, args.warmup, args.eval_every, args.eval_batches = 5, 4, 2, 5, 2
    if args.out is None:
        args.out = Path(tempfile.mkdtemp(prefix="tiny-gpt-smoke-")) if args.smoke else ROOT / "weights" / "tiny-gpt"
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    docs = build_corpus()
    if args.smoke:
        docs = docs[:: max(1, len(docs) // 40)][:40]
    train_docs, val_docs = split_corpus(docs, args.val_fraction, args.seed)
    print(f"corpus: {len(docs)} documents, {sum(map(len, docs)):,} characters "
          f"({len(val_docs)} documents held out)")
    tokenizer = train_tokenizer(train_docs, args.vocab_size, args.context)
    eot = tokenizer.convert_tokens_to_ids(EOT)
    train_ids, val_ids = token_stream(tokenizer, train_docs), token_stream(tokenizer, val_docs)
    print(f"tokens: {len(train_ids):,} train, {len(val_ids):,} validation (vocabulary {len(tokenizer)})")
    config = gpt2_config(args, len(tokenizer), eot)
    model = build_model(config.to_dict())
    print(f"model: {sum(p.numel() for p in model.parameters()):,} parameters")
    losses = train(model, train_ids, val_ids, args)
    save(model, config, tokenizer, args.out, eot)
    (args.out / "training.json").write_text(json.dumps(
        {"args": {k: v for k, v in vars(args).items() if k != "out"}, "documents": len(docs),
         "characters": sum(map(len, docs)), "train_tokens": len(train_ids), "validation_tokens": len(val_ids),
         "final_loss": losses, "seconds": round(time.perf_counter() - start, 1)}, indent=2) + "\n")
    print(f"saved {args.out} in {time.perf_counter() - start:.0f} s; final losses {losses}")
    if not args.smoke:
        print_samples(args.out)


if __name__ == "__main__":
    main()
