"""Train `weights/tiny-seq2seq`, a small BART that turns number words and spelled-out dates into digits.

    "seven thousand and twelve" -> "7012"          "the fourth of July, 1999" -> "1999-07-04"

The task (scripts/seq2seq_task.py) is generated, so it needs no corpus or network, and it is chosen so
that cross-attention shows a clean alignment: each output digit looks at the word it comes from, and a
date's year, written last, comes out first. About 5% of all numbers and dates are held out by value
(every wording of them) and never trained on; exact-match accuracy is measured on those.

    python scripts/train_tiny_seq2seq.py                          # rebuilds weights/tiny-seq2seq (~8 min, 2 cores)
    python scripts/train_tiny_seq2seq.py --smoke --out /tmp/ts    # a few steps on a tiny model (seconds)

The model is lmtui's own `lmtui.models.bart.Bart`, whose module names are the checkpoint's tensor names,
so its state_dict (less the tied copies of `model.shared`) is what `BartForConditionalGeneration`
saves. transformers (a test dependency) is used only to write config.json and the tokenizer files in
its own format. Data, initialisation and batches are seeded.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import seq2seq_task as task  # beside this script: python puts the script's folder on sys.path
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor, nn
from tqdm import tqdm

from lmtui.models.bart import Bart, Config

ROOT = Path(__file__).resolve().parent.parent
SPECIAL = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")  # ids 0..4, as in RoBERTa and BART
BOS, PAD, EOS = 0, 1, 2
IGNORE = -100  # label of padding: no loss
TIED = ("model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight", "lm_head.weight")
DEMO = ("seven thousand and twelve", "three hundred and forty-two", "ninety-nine thousand nine hundred ninety-nine",
        "the fourth of July, 1999", "March 9, 2024", "31 December 1899")


# ----------------------------------------------------------------------------- tokenizer and config

def build_tokenizer(context: int):
    """BART's byte-level BPE (RobertaTokenizer: <s> X </s>) whose merges spell every word of the task's
    lexicon as one token, with or without its leading space, and merge no digits, so each source word
    and each output digit is one position for cross-attention to point at."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import RobertaTokenizer

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=2000, special_tokens=list(SPECIAL), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    words = task.lexicon()
    backend.train_from_iterator(words + [" " + word for word in words], trainer)
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
              for m in json.loads(backend.to_str())["model"]["merges"]]
    return RobertaTokenizer(vocab=backend.get_vocab(), merges=merges, model_max_length=context)


def bart_config(args: argparse.Namespace, vocab_size: int):
    """The transformers BartConfig this checkpoint declares (no dropout: the data never repeats)."""
    from transformers import BartConfig

    return BartConfig(
        vocab_size=vocab_size, d_model=args.hidden, encoder_layers=args.layers, decoder_layers=args.layers,
        encoder_attention_heads=args.heads, decoder_attention_heads=args.heads, encoder_ffn_dim=args.ffn,
        decoder_ffn_dim=args.ffn, max_position_embeddings=args.context, activation_function="gelu",
        dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, init_std=args.init_std,
        scale_embedding=False, tie_word_embeddings=True, pad_token_id=PAD, bos_token_id=BOS,
        eos_token_id=EOS, decoder_start_token_id=EOS, forced_bos_token_id=BOS, forced_eos_token_id=EOS,
        architectures=["BartForConditionalGeneration"],
    )


def generation_defaults(args: argparse.Namespace) -> dict[str, object]:
    """Greedy, one beam, long enough for a date (<s> + 10 characters + </s>) with room to spare."""
    return {"bos_token_id": BOS, "decoder_start_token_id": EOS, "eos_token_id": EOS, "forced_bos_token_id": BOS,
            "forced_eos_token_id": EOS, "pad_token_id": PAD, "do_sample": False, "num_beams": 1,
            "max_new_tokens": args.max_new_tokens}


# ----------------------------------------------------------------------------- model

def build_model(config: dict, init_std: float) -> Bart:
    """lmtui's Bart with the embeddings tied as transformers ties them and BART's initialisation:
    weights N(0, init_std), biases 0, LayerNorms 1/0, the padding row of the embedding 0."""
    model = Bart(Config.from_hf(config))
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, 0.0, init_std)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
    with torch.no_grad():
        model.model.shared.weight[PAD].zero_()
    for name in TIED:
        owner, _, attribute = name.rpartition(".")
        setattr(model.get_submodule(owner), attribute, model.model.shared.weight)
    return model


def checkpoint_tensors(model: Bart) -> dict[str, Tensor]:
    """What BartForConditionalGeneration.save_pretrained writes: every tensor but the tied copies."""
    return {name: tensor.detach().contiguous().clone() for name, tensor in model.state_dict().items()
            if name not in TIED}


# ----------------------------------------------------------------------------- data

def padded(rows: list[list[int]]) -> Tensor:
    """(B, longest) ids padded on the right. Padding here rather than with the tokenizer's padding=True,
    which would switch padding on in the backend and so in the saved tokenizer.json."""
    return nn.utils.rnn.pad_sequence([torch.tensor(row) for row in rows], batch_first=True, padding_value=PAD)


def encode_batch(tokenizer, pairs: list[tuple[str, str]]) -> dict[str, Tensor]:
    """Sources padded on the right with their key mask; targets as the tokenizer encodes them
    (<s> digits </s>), which the decoder reads shifted right behind decoder_start_token_id."""
    source = padded(tokenizer([s for s, _ in pairs])["input_ids"])  # (B, S)
    target = padded(tokenizer([t for _, t in pairs])["input_ids"])  # (B, T)
    decoder_input = torch.cat([torch.full_like(target[:, :1], EOS), target[:, :-1]], dim=1)  # (B, T)
    labels = target.masked_fill(target == PAD, IGNORE)  # (B, T)
    return {"input_ids": source, "key_mask": (source != PAD).long(), "decoder_input": decoder_input,
            "labels": labels}


def batches(tokenizer, seed: int, size: int) -> Iterator[dict[str, Tensor]]:
    stream = task.stream(seed)
    while True:
        yield encode_batch(tokenizer, [next(stream) for _ in range(size)])


def loss_of(model: Bart, batch: dict[str, Tensor]) -> Tensor:
    logits = model(batch["input_ids"], batch["decoder_input"], batch["key_mask"])  # (B, T, V)
    return F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=IGNORE)


# ----------------------------------------------------------------------------- evaluation

@torch.no_grad()
def greedy(model: Bart, batch: dict[str, Tensor], max_new_tokens: int) -> list[list[int]]:
    """Greedy decoding as generate() does it with this config: <s> forced first, stop at </s>."""
    cross = model.cross_cache(model.encode(batch["input_ids"], batch["key_mask"]))
    ids = torch.tensor([[EOS, BOS]]).expand(len(batch["input_ids"]), 2)  # (B, 2)
    for _ in range(max_new_tokens - 1):
        logits = model.decode(ids, cross, encoder_mask=batch["key_mask"])[:, -1]  # (B, V)
        ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], dim=1)  # (B, t + 1)
        if (ids == EOS)[:, 2:].any(-1).all():
            break
    rows = ids[:, 1:].tolist()
    return [row[: row.index(EOS) + 1] if EOS in row else row for row in rows]


def evaluate(model: Bart, tokenizer, pairs: list[tuple[str, str]], args: argparse.Namespace) -> dict[str, float]:
    """Teacher-forced loss and greedy exact-match accuracy on `pairs`, in batches."""
    model.eval()
    losses, correct = [], 0
    for start in range(0, len(pairs), 256):
        chunk = pairs[start:start + 256]
        batch = encode_batch(tokenizer, chunk)
        with torch.no_grad():
            losses.append(loss_of(model, batch).item() * len(chunk))
        outputs = tokenizer.batch_decode(greedy(model, batch, args.max_new_tokens), skip_special_tokens=True)
        correct += sum(out == target for out, (_, target) in zip(outputs, chunk))
    model.train()
    return {"loss": sum(losses) / len(pairs), "exact_match": correct / len(pairs)}


# ----------------------------------------------------------------------------- training

def lr_at(step: int, args: argparse.Namespace) -> float:
    """Linear warmup, then cosine decay to a tenth of the peak."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = (step - args.warmup) / max(1, args.steps - args.warmup)
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(model: Bart, tokenizer, held_out: list[tuple[str, str]], args: argparse.Namespace) -> list[dict]:
    """AdamW with clipping; every --eval-every steps, loss and exact match on the held-out sample."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.98))
    history: list[dict] = []
    recent: list[float] = []
    model.train()
    bar = tqdm(zip(range(args.steps), batches(tokenizer, args.seed, args.batch)), total=args.steps,
               desc="training", unit="step", dynamic_ncols=True)
    for step, batch in bar:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, args)
        loss = loss_of(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        recent = (recent + [loss.item()])[-50:]
        bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr_at(step, args):.1e}")
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            scores = evaluate(model, tokenizer, held_out, args)
            history.append({"step": step + 1, "train_loss": sum(recent) / len(recent),
                            "held_out_loss": scores["loss"], "held_out_exact_match": scores["exact_match"]})
            bar.write(f"step {step + 1}: train loss {history[-1]['train_loss']:.3g}, held-out loss "
                      f"{scores['loss']:.3g}, held-out exact match {scores['exact_match']:.2%}")
    return history


# ----------------------------------------------------------------------------- saving

def save(model: Bart, tokenizer, config, args: argparse.Namespace) -> None:
    """The folder as transformers would write it: config, safetensors (format "pt"), generation
    defaults and tokenizer files."""
    args.out.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(args.out)
    save_file(checkpoint_tensors(model), str(args.out / "model.safetensors"), metadata={"format": "pt"})
    (args.out / "generation_config.json").write_text(json.dumps(generation_defaults(args), indent=2) + "\n")
    tokenizer.save_pretrained(args.out)


def write_report(args: argparse.Namespace, model: Bart, history: list[dict], seconds: float) -> None:
    report = {"args": {k: v for k, v in vars(args).items() if k != "out"},
              "parameters": sum(p.numel() for p in model.parameters()), "examples_seen": args.steps * args.batch,
              "held_out_examples": args.eval_examples, "final": history[-1], "history": history,
              "seconds": round(seconds, 1), "torch": torch.__version__}
    (args.out / "training.json").write_text(json.dumps(report, indent=2) + "\n")


def print_samples(model: Bart, tokenizer, args: argparse.Namespace) -> None:
    model.eval()
    pairs = [(text, "") for text in DEMO]
    outputs = tokenizer.batch_decode(greedy(model, encode_batch(tokenizer, pairs), args.max_new_tokens),
                                     skip_special_tokens=True)
    for text, out in zip(DEMO, outputs):
        print(f"{text!r} -> {out!r}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: weights/tiny-seq2seq; with --smoke a new temporary folder)")
    p.add_argument("--seed", type=int, default=0, help="seed for initialisation and the training stream")
    p.add_argument("--eval-seed", type=int, default=1, help="seed of the held-out sample scored during training")
    p.add_argument("--layers", type=int, default=3, help="encoder layers, and as many decoder layers")
    p.add_argument("--hidden", type=int, default=128, help="hidden size (d_model)")
    p.add_argument("--heads", type=int, default=4, help="attention heads, in every attention")
    p.add_argument("--ffn", type=int, default=256, help="feed-forward size")
    p.add_argument("--context", type=int, default=64, help="max_position_embeddings: tokens per side")
    p.add_argument("--init-std", type=float, default=0.02, help="std of the normal initialisation")
    p.add_argument("--steps", type=int, default=3000, help="optimizer steps")
    p.add_argument("--batch", type=int, default=64, help="examples per step (fresh ones every step)")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    p.add_argument("--warmup", type=int, default=200, help="linear warmup steps")
    p.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay on matrices")
    p.add_argument("--eval-every", type=int, default=500, help="steps between held-out evaluations")
    p.add_argument("--eval-examples", type=int, default=1000, help="held-out examples scored")
    p.add_argument("--max-new-tokens", type=int, default=16, help="generation limit saved in generation_config")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (0: torch's default); matrices this small gain little from a second "
                        "thread, and lose a lot when another process is using the other core")
    p.add_argument("--smoke", action="store_true",
                   help="a quick check: a 1-layer model of width 32, 6 steps of 8 examples, 16 held out")
    args = p.parse_args(argv)
    if args.smoke:
        args.layers, args.hidden, args.heads, args.ffn = 1, 32, 2, 64
        args.steps, args.batch, args.warmup, args.eval_every, args.eval_examples = 6, 8, 2, 3, 16
    if args.out is None and args.smoke:
        args.out = Path(tempfile.mkdtemp(prefix="tiny-seq2seq-smoke-"))
    args.out = args.out or ROOT / "weights" / "tiny-seq2seq"
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    tokenizer = build_tokenizer(args.context)
    config = bart_config(args, len(tokenizer))
    model = build_model(config.to_dict(), args.init_std)
    held_out = task.examples(args.eval_examples, args.eval_seed, held_out=True)
    print(f"vocabulary {len(tokenizer)}, model {sum(p.numel() for p in model.parameters()):,} parameters, "
          f"{len(held_out)} held-out examples")
    history = train(model, tokenizer, held_out, args)
    save(model, tokenizer, config, args)
    write_report(args, model, history, time.perf_counter() - start)
    print(f"saved {args.out} in {time.perf_counter() - start:.0f} s; {history[-1]}")
    print_samples(model, tokenizer, args)


if __name__ == "__main__":
    main()
