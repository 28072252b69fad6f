"""Peak memory of attention inspection on a long prompt, next to the plain forward and transformers.

lmtui records each layer's queries and keys during one forward on the fast kernels and computes a
head's probabilities only when asked; transformers' `output_attentions` keeps layers x heads x T x T
probabilities. Each run happens in its own process, and what is reported is the growth of its peak
resident memory (VmHWM) over the resident memory once the model is loaded, so model weights and
library code do not count. Without --model a random checkpoint of a real model's shape is built:

    python scripts/bench_attention_memory.py --shape smollm2-135m --tokens 4096 --compare-tokens 1024
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_decoder import SHAPES, build_checkpoint  # noqa: E402

MIB = 2**20


def resident(field: str) -> int:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure(run: Callable[[], object]) -> dict[str, float]:
    """Peak growth of resident memory while `run` runs, with the peak reset to now first."""
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current VmRSS
    before = resident("VmRSS")
    start = time.perf_counter()
    run()
    return {"peak_mib": (resident("VmHWM") - before) / MIB, "seconds": time.perf_counter() - start}


def lmtui_run(folder: Path, mode: str, ids: torch.Tensor) -> Callable[[], object]:
    from lmtui.checkpoint import open_checkpoint
    from lmtui.inspect.attention import record
    from lmtui.inspect.inputs import TokenInputs
    from lmtui.models.loading import load_model

    model = load_model(open_checkpoint(folder), torch.float32, torch.device("cpu"))
    if mode == "forward":
        return lambda: model(ids)

    def inspect() -> None:
        view = record(model, "decoder", TokenInputs(tuple(ids[0].tolist())), None, str, str)
        view.map("self", -1, 0)  # one head's full T x T map, as plain lists
        view.summaries("self")  # and every head of every layer summarised

    return inspect


def transformers_run(folder: Path, ids: torch.Tensor) -> Callable[[], object]:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    return lambda: model(ids, output_attentions=True)


def worker(folder: Path, mode: str, tokens: int) -> None:
    """One measurement in this process; prints it as JSON."""
    torch.manual_seed(0)
    ids = torch.randint(0, 1000, (1, tokens))
    run = transformers_run(folder, ids) if mode == "transformers" else lmtui_run(folder, mode, ids)
    with torch.inference_mode():
        result = measure(run)
    print(json.dumps({"mode": mode, "tokens": tokens, **result}))


def measured(folder: Path, mode: str, tokens: int) -> dict[str, float]:
    command = [sys.executable, __file__, "--worker", mode, "--folder", str(folder), "--tokens", str(tokens)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def report(folder: Path, tokens: int, compare_tokens: int) -> None:
    rows = [measured(folder, "forward", tokens), measured(folder, "inspect", tokens)]
    if compare_tokens:
        rows += [measured(folder, "forward", compare_tokens), measured(folder, "inspect", compare_tokens),
                 measured(folder, "transformers", compare_tokens)]
    plain = {row["tokens"]: row["peak_mib"] for row in rows if row["mode"] == "forward"}
    print(f"{'run':<34} {'tokens':>6} {'peak growth':>12} {'x plain forward':>16} {'seconds':>8}")
    names = {"forward": "lmtui plain forward", "inspect": "lmtui inspect (1 map + summaries)",
             "transformers": "transformers output_attentions"}
    for row in rows:
        ratio = row["peak_mib"] / plain[row["tokens"]]
        print(f"{names[row['mode']]:<34} {row['tokens']:>6} {row['peak_mib']:>9.0f} MiB {ratio:>15.2f}x "
              f"{row['seconds']:>8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=[s for s in SHAPES if SHAPES[s][0] == "LlamaConfig"],
                        default="smollm2-135m", help="random checkpoint of this shape (when --model is not given)")
    parser.add_argument("--model", type=Path, help="a decoder checkpoint folder instead of a random one")
    parser.add_argument("--tokens", type=int, default=4096, help="prompt length for lmtui")
    parser.add_argument("--compare-tokens", type=int, default=1024,
                        help="shorter prompt run by both lmtui and transformers (0: skip); transformers "
                             "holds layers x heads x T x T probabilities, too much at 4096 on a small machine")
    parser.add_argument("--worker", choices=["forward", "inspect", "transformers"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.folder, args.worker, args.tokens)
    elif args.model:
        report(args.model, args.tokens, args.compare_tokens)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            build_checkpoint(args.shape, Path(tmp))
            report(Path(tmp), args.tokens, args.compare_tokens)


if __name__ == "__main__":
    main()
