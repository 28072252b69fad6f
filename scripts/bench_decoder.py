"""Side-by-side speed of lmtui and transformers on the same decoder checkpoint.

Times loading, a prefill forward, cached single-token decode steps, and whole greedy and beam-search
generations (`--steps` new tokens, no eos), and prints transformers' time over lmtui's (> 1 means
lmtui is faster). Without --model it
builds a random checkpoint of a real model's shape, so it runs offline:

    python scripts/bench_decoder.py --shape smollm2-135m --prompt 128 --steps 32
    python scripts/bench_decoder.py --model path/to/checkpoint --dtype bfloat16
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

Runs = dict[str, Callable[[], object]]  # what is timed, by name

SHAPES = {
    "smollm2-135m": ("LlamaConfig", "LlamaForCausalLM", dict(
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
        num_key_value_heads=3, max_position_embeddings=8192, rope_theta=100000.0, rms_norm_eps=1e-5,
        tie_word_embeddings=True)),
    "gpt2-124m": ("GPT2Config", "GPT2LMHeadModel", dict(
        vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12)),
}


def build_checkpoint(shape: str, folder: Path) -> None:
    import transformers

    config_name, model_name, settings = SHAPES[shape]
    torch.manual_seed(0)
    config = getattr(transformers, config_name)(**settings)
    getattr(transformers, model_name)(config).save_pretrained(folder)


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of `repeats` runs after one warm-up, in seconds."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def lmtui_runs(folder: Path, dtype: torch.dtype, ids: torch.Tensor, steps: int) -> Runs:
    from lmtui.checkpoint import open_checkpoint
    from lmtui.models.loading import load_model

    model = load_model(open_checkpoint(folder), dtype, torch.device("cpu"))

    def decode() -> None:
        cache = model.new_cache(1, ids.shape[1] + steps)
        token = model(ids, cache=cache)[:, -1:].argmax(-1)
        for _ in range(steps):
            token = model(token, cache=cache)[:, -1:].argmax(-1)

    def search(strategy: str) -> Callable[[], object]:
        from lmtui.decoding.beam import beam_search
        from lmtui.decoding.search import token_search
        from lmtui.decoding.settings import GenerationSettings
        from lmtui.decoding.stepper import DecoderStepper

        prompt = ids[0].tolist()
        settings = GenerationSettings(strategy=strategy, max_new_tokens=steps, num_beams=4 if strategy == "beam" else 1)
        run = beam_search if strategy == "beam" else token_search

        return lambda: list(run(DecoderStepper(model, prompt, steps), prompt, settings))

    return {
        "load": lambda: load_model(open_checkpoint(folder), dtype, torch.device("cpu")),
        "prefill": lambda: model(ids),
        "prefill + decode": decode,
        "greedy generate": search("greedy"),
        "beam-4 generate": search("beam"),
    }


def transformers_runs(folder: Path, dtype: torch.dtype, ids: torch.Tensor, steps: int) -> Runs:
    from transformers import AutoModelForCausalLM, DynamicCache

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).eval()

    def decode() -> None:
        cache = DynamicCache(config=model.config)
        token = model(ids, past_key_values=cache, use_cache=True).logits[:, -1:].argmax(-1)
        for _ in range(steps):
            token = model(token, past_key_values=cache, use_cache=True).logits[:, -1:].argmax(-1)

    def generate(beams: int) -> Callable[[], object]:
        options = dict(max_new_tokens=steps, min_new_tokens=steps, num_beams=beams, do_sample=False, pad_token_id=0)
        return lambda: model.generate(ids, attention_mask=torch.ones_like(ids), **options)

    return {
        "load": lambda: AutoModelForCausalLM.from_pretrained(folder, dtype=dtype),
        "prefill": lambda: model(ids).logits,
        "prefill + decode": decode,
        "greedy generate": generate(1),
        "beam-4 generate": generate(4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="checkpoint folder (default: a random one of --shape)")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="smollm2-135m")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--prompt", type=int, default=128, help="prompt length in tokens")
    parser.add_argument("--steps", type=int, default=32, help="cached decode steps after the prefill")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    dtype = getattr(torch, args.dtype)
    with tempfile.TemporaryDirectory() as scratch, torch.inference_mode():
        folder = args.model or Path(scratch)
        if args.model is None:
            build_checkpoint(args.shape, folder)
        ids = torch.randint(0, 1000, (1, args.prompt), generator=torch.Generator().manual_seed(0))
        ours = lmtui_runs(folder, dtype, ids, args.steps)
        theirs = transformers_runs(folder, dtype, ids, args.steps)
        print(f"{args.model or args.shape}, {args.dtype}, prompt {args.prompt}, {args.steps} decode steps, "
              f"{torch.get_num_threads()} threads; median of {args.repeats}")
        print(f"{'':18}{'lmtui':>10}{'transformers':>14}{'ratio':>8}")
        for name in ours:
            mine, reference = timed(ours[name], args.repeats), timed(theirs[name], args.repeats)
            print(f"{name:18}{mine * 1000:>8.1f}ms{reference * 1000:>12.1f}ms{reference / mine:>7.2f}x")


if __name__ == "__main__":
    main()
