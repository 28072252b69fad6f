"""Side-by-side generation speed of lmtui and transformers on the same encoder-decoder checkpoint.

Greedy and beam-4 generation of `--steps` tokens (no eos) from a `--source`-token input; prints
transformers' time over lmtui's (> 1 means lmtui is faster). Without --model it builds a random
checkpoint of a real model's shape, so it runs offline:

    python scripts/bench_seq2seq.py --shape t5-small --source 128 --steps 32
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from bench_decoder import timed

SHAPES = {
    "t5-small": ("T5Config", "T5ForConditionalGeneration", dict(
        vocab_size=32128, d_model=512, d_ff=2048, d_kv=64, num_layers=6, num_heads=8, feed_forward_proj="relu",
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)),
    "bart-base": ("BartConfig", "BartForConditionalGeneration", dict(
        vocab_size=50265, d_model=768, encoder_layers=6, decoder_layers=6, encoder_attention_heads=12,
        decoder_attention_heads=12, encoder_ffn_dim=3072, decoder_ffn_dim=3072, max_position_embeddings=1024,
        forced_eos_token_id=None)),
}


def build_checkpoint(shape: str, folder: Path) -> None:
    import transformers

    config_name, model_name, settings = SHAPES[shape]
    torch.manual_seed(0)
    getattr(transformers, model_name)(getattr(transformers, config_name)(**settings)).save_pretrained(folder)


def lmtui_generate(folder: Path, source: list[int], steps: int, beams: int) -> Callable[[], object]:
    from lmtui.checkpoint import open_checkpoint
    from lmtui.decoding.beam import beam_search
    from lmtui.decoding.search import token_search
    from lmtui.decoding.settings import GenerationSettings
    from lmtui.decoding.stepper import EncoderDecoderStepper
    from lmtui.models.loading import load_model

    model = load_model(open_checkpoint(folder), torch.float32, torch.device("cpu"))
    start = open_checkpoint(folder).config["decoder_start_token_id"]
    settings = GenerationSettings(strategy="beam" if beams > 1 else "greedy", max_new_tokens=steps, num_beams=beams)
    search = beam_search if beams > 1 else token_search
    return lambda: list(search(EncoderDecoderStepper(model, source, start, steps), [start], settings))


def transformers_generate(folder: Path, source: list[int], steps: int, beams: int) -> Callable[[], object]:
    from transformers import AutoModelForSeq2SeqLM

    model = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
    ids = torch.tensor([source])
    options = dict(max_new_tokens=steps, min_new_tokens=steps, num_beams=beams, do_sample=False)
    return lambda: model.generate(ids, attention_mask=torch.ones_like(ids), **options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="checkpoint folder (default: a random one of --shape)")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="t5-small")
    parser.add_argument("--source", type=int, default=128, help="source length in tokens")
    parser.add_argument("--steps", type=int, default=32, help="tokens to generate")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch, torch.inference_mode():
        folder = args.model or Path(scratch)
        if args.model is None:
            build_checkpoint(args.shape, folder)
        source = torch.randint(3, 1000, (args.source,), generator=torch.Generator().manual_seed(0)).tolist()
        print(f"{args.model or args.shape}, float32, source {args.source}, {args.steps} new tokens, "
              f"{torch.get_num_threads()} threads; median of {args.repeats}")
        print(f"{'':18}{'lmtui':>10}{'transformers':>14}{'ratio':>8}")
        for name, beams in (("greedy generate", 1), ("beam-4 generate", 4)):
            mine = timed(lmtui_generate(folder, source, args.steps, beams), args.repeats)
            reference = timed(transformers_generate(folder, source, args.steps, beams), args.repeats)
            print(f"{name:18}{mine * 1000:>8.1f}ms{reference * 1000:>12.1f}ms{reference / mine:>7.2f}x")


if __name__ == "__main__":
    main()
