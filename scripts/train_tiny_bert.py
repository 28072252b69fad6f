"""Train `weights/tiny-bert`, the small BERT masked-language model bundled for `lmtui fill-mask`.

The corpus is tiny-gpt's, imported from `train_tiny_gpt.py` rather than copied: Python's own
documentation (the language-reference topics and the standard library's docstrings), bundled with
every Python install, PSF-licensed, and English prose in one consistent style. One corpus for both
bundled models also lets a person compare what a decoder and an encoder learn from the same text.

    python scripts/train_tiny_bert.py                          # rebuilds weights/tiny-bert (~15 min, 2 cores)
    python scripts/train_tiny_bert.py --smoke --out /tmp/tb    # a few steps on a tiny slice (seconds)

The model is lmtui's own `lmtui.models.bert.Bert`, whose module names are `BertForMaskedLM`'s, so
its state_dict saved with safetensors (less the tied decoder tensors, as transformers leaves them
out) is a `BertForMaskedLM` checkpoint. transformers is used only for `BertConfig` and
`BertTokenizer`, to write config.json and the tokenizer files exactly as transformers writes them.
Everything is seeded, the corpus sorted and the vocabulary learned deterministically, so the same
versions and thread count give the same checkpoint. Needs lmtui installed (`pip install -e '.[test]'`).
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor, nn
from tqdm import tqdm
from train_tiny_gpt import build_corpus, lr_at, split_corpus

from lmtui.masked import fill_mask
from lmtui.models.bert import Bert, Config
from lmtui.tokenizer import load_tokenizer

ROOT = Path(__file__).resolve().parent.parent
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # the trainer gives them ids 0-4 in this order
CLS, SEP, MASK = (SPECIALS.index(token) for token in ("[CLS]", "[SEP]", "[MASK]"))
EXAMPLES = (
    "Return [MASK] if the object is callable, False otherwise.",
    "Raise [MASK] if the argument is not an integer.",
    "A [MASK] is an immutable sequence of Unicode characters.",
    "Open the file and return a file [MASK].",
    'The "[MASK]" statement is used to wrap the execution of a block.',
)


# ----------------------------------------------------------------------------- tokenizer and data

def train_tokenizer(docs: list[str], vocab_size: int, context: int) -> Any:
    """A cased WordPiece vocabulary, wrapped in transformers' BertTokenizer (which adds the [CLS] x [SEP]
    template) so that the saved tokenizer.json and tokenizer_config.json are what AutoTokenizer expects.

    Cased because Python is: the docs write `None`, `True`, `KeyError` and `path` as they must be typed.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertTokenizer

    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=False)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    fixed = list(SPECIALS) + continuation_alphabet(backend, docs)
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=fixed, show_progress=False)
    backend.train_from_iterator(docs, trainer)
    return BertTokenizer(vocab=backend.get_vocab(), do_lower_case=False, model_max_length=context)


def continuation_alphabet(backend: Any, docs: list[str]) -> list[str]:
    """`##c` for every character that occurs inside a word, sorted.

    The WordPiece trainer numbers these pieces in hash-map order, and its merges break ties by those
    numbers, so without them fixed up front every run learns a slightly different vocabulary. Given
    to the trainer as its special tokens, they get fixed ids; they end up as ordinary vocabulary entries
    because BertTokenizer is built from the learned vocabulary alone.
    """
    words = (word for doc in docs for word, _ in backend.pre_tokenizer.pre_tokenize_str(
        backend.normalizer.normalize_str(doc)))
    return ["##" + c for c in sorted({c for word in words for c in word[1:]})]


def token_stream(tokenizer: Any, docs: list[str]) -> tuple[Tensor, list[range]]:
    """All documents as one id stream, each followed by [SEP], and the span each document has in it."""
    ids: list[int] = []
    spans: list[range] = []
    for encoded in tokenizer.backend_tokenizer.encode_batch(docs, add_special_tokens=False):
        spans.append(range(len(ids), len(ids) + len(encoded.ids)))
        ids += encoded.ids + [SEP]
    return torch.tensor(ids, dtype=torch.long), spans


def window_starts(spans: list[range], width: int, total: int) -> Tensor:
    """Where a `width`-token window may start: at every document's start and every `width` tokens into
    a long one, so that the windows cover every part of every document (and run on into the next)."""
    starts = [start for span in spans for start in range(span.start, span.stop, width)]
    return torch.tensor([start for start in starts if start + width <= total], dtype=torch.long)


def wrap(windows: Tensor) -> Tensor:
    """(B, T - 2) windows -> (B, T) model inputs `[CLS] window [SEP]`, as the tokenizer frames a text."""
    B = windows.shape[0]
    return torch.cat([torch.full((B, 1), CLS), windows, torch.full((B, 1), SEP)], dim=1)


def random_batch(stream: Tensor, starts: Tensor, length: int, batch_tokens: int, gen: torch.Generator) -> Tensor:
    """(batch_tokens // length, length) inputs, each text starting at a random document (or chunk) start."""
    picked = starts[torch.randint(0, len(starts), (batch_tokens // length,), generator=gen)]
    return wrap(torch.stack([stream[s:s + length - 2] for s in picked.tolist()]))  # (B, T)


def mask_tokens(ids: Tensor, vocab_size: int, mask_prob: float, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """BERT's masking: each non-special token is selected with probability `mask_prob`; of those 80%
    become [MASK], 10% a random (non-special) token and 10% stay as they are, so the model cannot
    assume that an unmasked token is right. Returns (inputs, selected), both (B, T)."""
    special = ids < len(SPECIALS)  # (B, T)
    selected = (torch.rand(ids.shape, generator=gen) < mask_prob) & ~special
    action = torch.rand(ids.shape, generator=gen)  # (B, T): < 0.8 mask, < 0.9 random, else keep
    randoms = torch.randint(len(SPECIALS), vocab_size, ids.shape, generator=gen)
    inputs = torch.where(selected & (action < 0.8), MASK, ids)
    inputs = torch.where(selected & (action >= 0.8) & (action < 0.9), randoms, inputs)
    return inputs, selected


# ----------------------------------------------------------------------------- model

def bert_config(args: argparse.Namespace, tokenizer: Any) -> Any:
    """transformers' BertConfig for the model trained here (no dropout: lmtui's model has none)."""
    from transformers import BertConfig

    config = BertConfig(vocab_size=len(tokenizer), hidden_size=args.hidden, num_hidden_layers=args.layers,
                        num_attention_heads=args.heads, intermediate_size=args.intermediate,
                        max_position_embeddings=args.context, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, pad_token_id=tokenizer.pad_token_id,
                        architectures=["BertForMaskedLM"], tie_word_embeddings=True)
    config.dtype = "float32"
    return config


def build_model(config: dict[str, Any]) -> Bert:
    """lmtui's Bert, initialised as BERT is (normal std 0.02, zero biases, LayerNorm 1/0), with the
    decoder weight and bias tied to the word embeddings and `cls.predictions.bias` as transformers ties them."""
    model = Bert(Config.from_hf(config))
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=config["initializer_range"])
        if isinstance(module, nn.Linear):
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    head = model.cls.predictions
    head.decoder.weight = model.bert.embeddings.word_embeddings.weight
    head.decoder.bias = head.bias
    return model.train()


def mlm_loss(model: Bert, ids: Tensor, inputs: Tensor, selected: Tensor) -> tuple[Tensor, Tensor]:
    """Cross-entropy and correct predictions over the selected tokens only: the head (the costly
    vocabulary projection) runs on those ~15% of positions, not on all of them."""
    hidden = model.encode(inputs)[selected]  # (N, C)
    logits = model.cls.predictions(hidden)  # (N, vocab)
    targets = ids[selected]  # (N,)
    return F.cross_entropy(logits, targets), (logits.argmax(-1) == targets).sum()


@torch.no_grad()
def evaluate(model: Bert, stream: Tensor, length: int, args: argparse.Namespace) -> dict[str, float]:
    """MLM loss and masked-token accuracy on consecutive `length`-token windows of `stream` (at most
    --eval-batches batches), masked with a fixed seed so that every evaluation sees the same masks."""
    model.eval()
    n, batch = len(stream) // (length - 2), args.batch_tokens // length
    windows = stream[: n * (length - 2)].view(n, length - 2)[: args.eval_batches * batch]  # (n, T - 2)
    gen = torch.Generator().manual_seed(args.seed + 1)
    total_loss, correct, count = 0.0, 0, 0
    for chunk in windows.split(batch):
        ids = wrap(chunk)
        inputs, selected = mask_tokens(ids, model.config.vocab_size, args.mask_prob, gen)
        loss, right = mlm_loss(model, ids, inputs, selected)
        total_loss += loss.item() * int(selected.sum())
        correct, count = correct + int(right), count + int(selected.sum())
    model.train()
    return {"loss": total_loss / count, "accuracy": correct / count}


# ----------------------------------------------------------------------------- training

@dataclass(frozen=True)
class Data:
    train: Tensor  # the training documents' id stream
    validation: Tensor  # the held-out documents' id stream
    starts: dict[int, Tensor]  # where a training window of each sequence length may start in `train`


def length_at(step: int, args: argparse.Namespace) -> int:
    """As BERT was pretrained: short sequences first (attention over fewer tokens learns to use its
    neighbours sooner), full-length ones for the last --long-fraction of steps to train every position."""
    return args.context if step >= round(args.steps * (1 - args.long_fraction)) else args.short_context


def optimizer_for(model: Bert, args: argparse.Namespace) -> torch.optim.Optimizer:
    """AdamW with weight decay on matrices only (not on biases and LayerNorm)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.98))


def train(model: Bert, data: Data, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Seeded MLM training with fresh masks every step; returns the last train/validation evaluation
    (at the length trained last, which is the full context)."""
    optimizer = optimizer_for(model, args)
    gen = torch.Generator().manual_seed(args.seed)
    results: dict[str, dict[str, float]] = {}
    bar = tqdm(range(args.steps), desc="training", unit="step", dynamic_ncols=True)
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, args)
        length = length_at(step, args)
        ids = random_batch(data.train, data.starts[length], length, args.batch_tokens, gen)  # (B, T)
        inputs, selected = mask_tokens(ids, model.config.vocab_size, args.mask_prob, gen)
        loss, _ = mlm_loss(model, ids, inputs, selected)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr_at(step, args):.1e}", length=length)
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            results = {name: evaluate(model, stream, length, args)
                       for name, stream in (("train", data.train), ("validation", data.validation))}
            bar.write(f"step {step + 1} ({length} tokens): " + ", ".join(
                f"{k} loss {v['loss']:.3f} accuracy {v['accuracy']:.3f}" for k, v in results.items()))
    return results


# ----------------------------------------------------------------------------- saving

def save(model: Bert, config: Any, tokenizer: Any, out: Path) -> None:
    """What `BertForMaskedLM.save_pretrained` writes: config.json and model.safetensors without the
    tied `cls.predictions.decoder.*` tensors (and no generation_config.json: an encoder does not
    generate), plus the tokenizer files."""
    out.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(out)
    state = {name: t.detach().contiguous() for name, t in model.state_dict().items() if name not in model.tied}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(out)


def print_samples(model: Bert, out: Path) -> None:
    """Top-5 fill-mask candidates for a few sentences, as `lmtui fill-mask` computes them."""
    model.eval()
    tokenizer = load_tokenizer(out)
    for text in EXAMPLES:
        for prediction in fill_mask(model, tokenizer, text, top_k=5):
            candidates = ", ".join(f"{c.text} {c.prob:.3f}" for c in prediction.candidates)
            print(f"--- {text}\n    {candidates}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: weights/tiny-bert; with --smoke a new temporary folder)")
    p.add_argument("--seed", type=int, default=0, help="seed for the split, initialisation, batches and masks")
    p.add_argument("--vocab-size", type=int, default=4096, help="WordPiece vocabulary size")
    p.add_argument("--layers", type=int, default=3, help="encoder layers")
    p.add_argument("--hidden", type=int, default=160, help="hidden size")
    p.add_argument("--heads", type=int, default=5, help="attention heads")
    p.add_argument("--intermediate", type=int, default=640, help="feed-forward inner size")
    p.add_argument("--context", type=int, default=128,
                   help="max_position_embeddings and the sequence length of the last steps ([CLS], [SEP] included)")
    p.add_argument("--short-context", type=int, default=64, help="sequence length of the first steps")
    p.add_argument("--long-fraction", type=float, default=0.4, help="share of steps, at the end, at --context")
    p.add_argument("--mask-prob", type=float, default=0.15, help="share of tokens selected for prediction")
    p.add_argument("--steps", type=int, default=2500, help="optimizer steps")
    p.add_argument("--batch-tokens", type=int, default=4096,
                   help="tokens per step (64 sequences of 64 tokens, then 32 of 128)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    p.add_argument("--warmup", type=int, default=100, help="linear warmup steps (then cosine decay to lr/10)")
    p.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay on matrices")
    p.add_argument("--val-fraction", type=float, default=0.02, help="share of documents held out")
    p.add_argument("--eval-every", type=int, default=250, help="steps between train/validation reports")
    p.add_argument("--eval-batches", type=int, default=8, help="batches per loss and accuracy estimate")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--smoke", action="store_true",
                   help="a quick check: 40 documents, vocab 200, a 2-layer model, 5 steps, no samples")
    args = p.parse_args(argv)
    if args.smoke:
        args.vocab_size, args.layers, args.hidden, args.heads, args.intermediate = 200, 2, 32, 2, 64
        args.context, args.short_context, args.long_fraction, args.batch_tokens = 32, 16, 0.4, 128
        args.steps, args.warmup, args.eval_every, args.eval_batches = 5, 2, 5, 2
    if args.out is None:
        args.out = Path(tempfile.mkdtemp(prefix="tiny-bert-smoke-")) if args.smoke else ROOT / "weights" / "tiny-bert"
    return args


def load_data(args: argparse.Namespace) -> tuple[Any, Data, dict[str, int]]:
    """The tokenizer, the train/validation id streams with the train window starts, and corpus sizes."""
    docs = build_corpus()
    if args.smoke:
        docs = docs[:: max(1, len(docs) // 40)][:40]
    train_docs, val_docs = split_corpus(docs, args.val_fraction, args.seed)
    tokenizer = train_tokenizer(train_docs, args.vocab_size, args.context)
    assert tokenizer.convert_tokens_to_ids(list(SPECIALS)) == list(range(len(SPECIALS)))
    (train_ids, spans), (val_ids, _) = token_stream(tokenizer, train_docs), token_stream(tokenizer, val_docs)
    starts = {n: window_starts(spans, n - 2, len(train_ids)) for n in (args.short_context, args.context)}
    sizes = {"documents": len(docs), "validation_documents": len(val_docs), "characters": sum(map(len, docs)),
             "train_tokens": len(train_ids), "validation_tokens": len(val_ids)}
    return tokenizer, Data(train_ids, val_ids, starts), sizes


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    tokenizer, data, sizes = load_data(args)
    print(f"corpus: {sizes['documents']} documents, {sizes['characters']:,} characters "
          f"({sizes['validation_documents']} held out); tokens: {sizes['train_tokens']:,} train, "
          f"{sizes['validation_tokens']:,} validation (vocabulary {len(tokenizer)})")
    config = bert_config(args, tokenizer)
    model = build_model(config.to_dict())
    print(f"model: {sum(p.numel() for p in model.parameters()):,} parameters")
    results = train(model, data, args)
    save(model, config, tokenizer, args.out)
    (args.out / "training.json").write_text(json.dumps(
        {"args": {k: v for k, v in vars(args).items() if k != "out"}, **sizes,
         "final": results, "seconds": round(time.perf_counter() - start, 1)}, indent=2) + "\n")
    print(f"saved {args.out} in {time.perf_counter() - start:.0f} s; final {results}")
    if not args.smoke:
        print_samples(model, args.out)


if __name__ == "__main__":
    main()
