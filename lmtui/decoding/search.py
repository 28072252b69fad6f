"""Greedy search and sampling: one loop, two ways to choose the next token.

Written as a generator that yields one `TokenStep` per row per step and returns the sequences, so
the same code drives a one-shot `generate` and a token-by-token stream.
"""

from __future__ import annotations

from collections.abc import Callable, Generator

import torch
from torch import Tensor

from lmtui.decoding import processors
from lmtui.decoding.records import Candidate, FinishReason, Sequence, TokenStep
from lmtui.decoding.settings import GenerationSettings
from lmtui.decoding.stepper import Stepper

StopCheck = Callable[[list[int]], bool]  # generated ids -> has a stop string appeared?


def token_search(
    stepper: Stepper,
    prompt_ids: list[int],
    settings: GenerationSettings,
    stop: StopCheck | None = None,
) -> Generator[TokenStep, None, list[Sequence]]:
    """Greedy (argmax) or sampling (`settings.strategy == "sample"`) over `num_return_sequences` rows."""
    sampling = settings.strategy == "sample"
    rows = settings.num_return_sequences if sampling else 1
    constraints = processors.constraints(settings, len(prompt_ids))
    filters = processors.filters(settings) if sampling else []
    generator = seeded_generator(settings.seed) if sampling else None
    eos = torch.tensor(settings.eos_token_ids, dtype=torch.long)
    sequences = torch.tensor([prompt_ids] * rows)  # (rows, T) on the CPU: processors read it
    running = torch.ones(rows, dtype=torch.bool)
    lengths, scores = [0] * rows, [0.0] * rows
    finish: list[FinishReason] = ["length"] * rows
    logits = stepper.prefill(rows) if settings.max_new_tokens > 0 else None
    for step in range(settings.max_new_tokens):
        raw = logits.cpu()  # (rows, V) float32
        chosen_from = processors.apply(filters, sequences, processors.apply(constraints, sequences, raw))
        tokens = torch.where(running, choose(chosen_from, generator), settings.fill_token_id)  # (rows,)
        sequences = torch.cat([sequences, tokens[:, None]], dim=1)
        logprobs = chosen_from.log_softmax(dim=-1).gather(1, tokens[:, None]).squeeze(1).tolist()
        before = top_candidates(raw.softmax(dim=-1), settings.record_top_k)
        after = top_candidates(chosen_from.softmax(dim=-1), settings.record_top_k)
        ended = torch.isin(tokens, eos).tolist()
        for row in running.nonzero().flatten().tolist():
            lengths[row] += 1
            scores[row] += logprobs[row]
            yield TokenStep(step, row, before[row], after[row], int(tokens[row]), logprobs[row])
            if ended[row]:
                running[row], finish[row] = False, "eos"
            elif stop is not None and stop(sequences[row, len(prompt_ids) :].tolist()):
                running[row], finish[row] = False, "stop"
        if not running.any() or step == settings.max_new_tokens - 1:
            break
        logits = stepper.step(tokens.to(logits.device))
    start = len(prompt_ids)
    return [
        Sequence(tuple(sequences[row, start : start + lengths[row]].tolist()), scores[row], finish[row])
        for row in range(rows)
    ]


def choose(scores: Tensor, generator: torch.Generator | None) -> Tensor:
    """The next token of each row of scores (rows, V): the argmax, or a draw when sampling."""
    if generator is None:
        return scores.argmax(dim=-1)
    return torch.multinomial(scores.softmax(dim=-1), num_samples=1, generator=generator).squeeze(1)


def seeded_generator(seed: int | None) -> torch.Generator:
    """A CPU generator seeded like `torch.manual_seed(seed)`, so a seed draws what transformers draws."""
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


def top_candidates(probs: torch.Tensor, k: int) -> list[tuple[Candidate, ...]]:
    """The k most likely tokens of each row of probs (N, V), most likely first."""
    values, indices = probs.topk(min(k, probs.shape[-1]), dim=-1)  # (N, k)
    return [
        tuple(Candidate(token, prob) for token, prob in zip(row_ids, row_probs) if prob > 0)
        for row_ids, row_probs in zip(indices.tolist(), values.tolist())
    ]
