"""Logits processing in transformers' order, as small pure functions of (sequences, scores).

`constraints` are what every strategy applies (repetition penalty, n-gram blocking, min length,
forced tokens); `filters` are the sampling warpers (temperature, top-k, top-p, min-p). Each takes
`sequences` (N, L) — every token so far, the prompt included — and `scores` (N, V), and returns new
scores without touching its inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from lmtui.decoding.settings import GenerationSettings

Processor = Callable[[Tensor, Tensor], Tensor]


def constraints(settings: GenerationSettings, prompt_len: int) -> list[Processor]:
    """The processors transformers applies whatever the strategy, in its order."""
    max_length = prompt_len + settings.max_new_tokens
    chain: list[Processor] = []
    if settings.repetition_penalty != 1.0:
        chain.append(lambda seqs, scores: repetition_penalty(seqs, scores, settings.repetition_penalty))
    if settings.no_repeat_ngram_size > 0:
        chain.append(lambda seqs, scores: no_repeat_ngram(seqs, scores, settings.no_repeat_ngram_size))
    if settings.min_new_tokens > 0 and settings.eos_token_ids:
        chain.append(lambda seqs, scores: min_new_tokens(seqs, scores, prompt_len, settings))
    if settings.forced_bos_token_id is not None:
        chain.append(lambda seqs, scores: force_at(scores, seqs.shape[-1] == 1, (settings.forced_bos_token_id,)))
    if settings.forced_eos_token_ids:
        eos = settings.forced_eos_token_ids
        chain.append(lambda seqs, scores: force_at(scores, seqs.shape[-1] == max_length - 1, eos))
    return chain


def filters(settings: GenerationSettings, min_tokens_to_keep: int = 1) -> list[Processor]:
    """Sampling warpers in transformers' order: temperature, top-k, top-p, min-p."""
    chain: list[Processor] = []
    if settings.temperature != 1.0:
        chain.append(lambda seqs, scores: scores / settings.temperature)
    if settings.top_k != 0:
        chain.append(lambda seqs, scores: top_k(scores, max(settings.top_k, min_tokens_to_keep)))
    if settings.top_p < 1.0:
        chain.append(lambda seqs, scores: top_p(scores, settings.top_p, min_tokens_to_keep))
    if settings.min_p is not None:
        chain.append(lambda seqs, scores: min_p(scores, settings.min_p, min_tokens_to_keep))
    return chain


def apply(chain: list[Processor], sequences: Tensor, scores: Tensor) -> Tensor:
    for processor in chain:
        scores = processor(sequences, scores)
    return scores


def repetition_penalty(sequences: Tensor, scores: Tensor, penalty: float) -> Tensor:
    """Make every token already in the sequence less likely: divide positive logits, multiply negative."""
    seen = scores.gather(1, sequences)  # (N, L)
    seen = torch.where(seen < 0, seen * penalty, seen / penalty)
    return scores.scatter(1, sequences, seen)


def no_repeat_ngram(sequences: Tensor, scores: Tensor, n: int) -> Tensor:
    """Ban each token that would complete an n-gram already present in its row."""
    length = sequences.shape[-1]
    if length < n:
        return scores
    scores = scores.clone()
    for row, tokens in enumerate(sequences.tolist()):
        prefix = tuple(tokens[length + 1 - n :]) if n > 1 else ()
        banned = [tokens[i + n - 1] for i in range(length - n + 1) if tuple(tokens[i : i + n - 1]) == prefix]
        scores[row, banned] = -math.inf
    return scores


def min_new_tokens(sequences: Tensor, scores: Tensor, prompt_len: int, settings: GenerationSettings) -> Tensor:
    """No end of sequence before `min_new_tokens` tokens have been generated."""
    if sequences.shape[-1] - prompt_len >= settings.min_new_tokens:
        return scores
    scores = scores.clone()
    scores[:, list(settings.eos_token_ids)] = -math.inf
    return scores


def force_at(scores: Tensor, now: bool, token_ids: tuple[int, ...]) -> Tensor:
    """Only `token_ids` may come next (forced BOS on the first step, forced EOS on the last)."""
    if not now:
        return scores
    forced = torch.full_like(scores, -math.inf)
    forced[:, list(token_ids)] = 0
    return forced


def top_k(scores: Tensor, k: int) -> Tensor:
    """Keep the k highest scores (ties with the k-th included)."""
    kth = torch.topk(scores, min(k, scores.shape[-1]))[0][..., -1, None]  # (N, 1)
    return scores.masked_fill(scores < kth, -math.inf)


def top_p(scores: Tensor, p: float, min_tokens_to_keep: int = 1) -> Tensor:
    """Keep the smallest set of top tokens whose probability reaches p (nucleus sampling)."""
    ascending, order = torch.sort(scores, descending=False)  # (N, V)
    cumulative = ascending.softmax(dim=-1).cumsum(dim=-1)
    remove = cumulative <= 1 - p
    remove[..., -min_tokens_to_keep:] = False
    return scores.masked_fill(remove.scatter(1, order, remove), -math.inf)


def min_p(scores: Tensor, p: float, min_tokens_to_keep: int = 1) -> Tensor:
    """Keep tokens at least p times as likely as the most likely one."""
    probs = scores.softmax(dim=-1)
    remove = probs < p * probs.amax(dim=-1, keepdim=True)
    order = torch.argsort(scores, dim=-1, descending=True)
    remove_sorted = remove.gather(1, order)
    remove_sorted[..., :min_tokens_to_keep] = False
    return scores.masked_fill(remove_sorted.scatter(1, order, remove_sorted), -math.inf)
