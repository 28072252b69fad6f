"""Beam search, step for step as transformers 5 runs it, so the same settings give the same sequences.

Every step all `num_beams` hypotheses advance in one batched `stepper.step`; the KV cache follows the
surviving parents in place. Of the `beams_to_keep` best continuations, those that end (eos, a stop
check, or the length limit) may enter a set of the `num_beams` best finished hypotheses, scored with
the length penalty; the best `num_beams` that do not end carry on.

transformers decides everything with `topk` over float32 scores and finite -1e9 masks, and ties or
masked sums decide which hypotheses live, so this file repeats those operations tensor for tensor
(for one prompt: the batch dimension is gone) rather than re-deriving them.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import torch
from torch import Tensor

from lmtui.decoding import processors
from lmtui.decoding.records import BeamStep, FinishReason, Hypothesis, HypothesisStatus, Sequence
from lmtui.decoding.search import StopCheck
from lmtui.decoding.settings import GenerationSettings
from lmtui.decoding.stepper import Stepper

MASK = -1.0e9  # transformers' "impossible" score: finite, so a masked sum still orders like the others


@dataclass
class Beams:
    """The hypotheses still being extended, best first (transformers' `running_*` tensors)."""

    sequences: Tensor  # (nb, T + max_new) prompt, then generated tokens up to `length`, then fill
    scores: Tensor  # (nb,) float32 running sums of log-probs
    length: int  # tokens so far, prompt included (transformers' cur_len)


@dataclass
class Candidates:
    """The `beams_to_keep` best continuations of one step, best first."""

    scores: Tensor  # (K,) running sum of log-probs with the new token
    parents: Tensor  # (K,) the beam each one extends
    tokens: Tensor  # (K,)
    reasons: list[FinishReason | None]  # why each one ends here, None when it can go on

    @property
    def hits(self) -> Tensor:
        """(K,) bool: transformers' `next_token_hits_stopping_criteria`."""
        return torch.tensor([reason is not None for reason in self.reasons])


@dataclass
class Finished:
    """The `num_beams` best ended hypotheses so far, best first (transformers' `sequences`, `beam_scores`)."""

    scores: Tensor  # (nb,) float32 length-penalised; MASK while a slot is empty
    done: Tensor  # (nb,) bool: the slot holds a real ended hypothesis (`is_sent_finished`)
    sequences: list[Sequence | None]  # None: a slot never filled


def beam_search(
    stepper: Stepper,
    prompt_ids: list[int],
    settings: GenerationSettings,
    stop: StopCheck | None = None,
) -> Generator[BeamStep, None, list[Sequence]]:
    """Yield one `BeamStep` per step; return the `num_return_sequences` best finished hypotheses."""
    nb = settings.num_beams
    if settings.max_new_tokens == 0:
        return [Sequence((), 0.0, "length")] * settings.num_return_sequences
    chain = processors.constraints(settings, len(prompt_ids))
    keep = max(2, 1 + len(settings.eos_token_ids)) * nb
    beams = start(prompt_ids, settings)
    finished = Finished(torch.full((nb,), MASK), torch.zeros(nb, dtype=torch.bool), [None] * nb)
    logits = stepper.prefill(nb)  # (nb, V)
    for step in range(settings.max_new_tokens):
        log_probs = logits.cpu().log_softmax(dim=-1)  # (nb, V): constraints act on log-probs in beam search
        log_probs = processors.apply(chain, beams.sequences[:, : beams.length], log_probs)
        candidates = top_continuations(log_probs, beams, keep, len(prompt_ids), settings, stop)
        chosen = running_for_next_step(candidates, nb)
        finished, entered = update_finished(finished, candidates, beams, step + 1, len(prompt_ids), settings)
        yield BeamStep(step, hypotheses(candidates, chosen, entered))
        beams = next_beams(beams, candidates, chosen)
        improvable = can_improve(beams, finished, step + 1, settings)
        if not has_unfinished(improvable, finished, candidates, settings):
            break
        reorder(stepper, candidates.parents[chosen], logits.device)
        logits = stepper.step(beams.sequences[:, beams.length - 1].to(logits.device))
    return returned(finished, settings.num_return_sequences)


def start(prompt_ids: list[int], settings: GenerationSettings) -> Beams:
    """`num_beams` copies of the prompt; only the first may be extended at the first step.

    The others score MASK so the first step does not pick the same continuation num_beams times.
    """
    nb, total = settings.num_beams, len(prompt_ids) + settings.max_new_tokens
    sequences = torch.full((nb, total), settings.fill_token_id, dtype=torch.long)
    sequences[:, : len(prompt_ids)] = torch.tensor(prompt_ids)
    scores = torch.zeros(nb)
    scores[1:] = MASK
    return Beams(sequences, scores, len(prompt_ids))


def best(values: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """topk of a (n,) row as transformers calls it, on a (1, n) batch, so ties break the same way."""
    top, indices = torch.topk(values[None], k=k)
    return top[0], indices[0]


def top_continuations(
    log_probs: Tensor,
    beams: Beams,
    keep: int,
    prompt_len: int,
    settings: GenerationSettings,
    stop: StopCheck | None,
) -> Candidates:
    """The `keep` best (beam, token) pairs by running score, and whether each ends here."""
    vocab = log_probs.shape[-1]
    totals = (log_probs + beams.scores[:, None]).reshape(-1)  # (nb * V,)
    scores, flat = best(totals, keep)
    parents, tokens = flat // vocab, flat % vocab  # (K,)
    generated = beams.sequences[:, prompt_len : beams.length].tolist()
    last = beams.length + 1 >= prompt_len + settings.max_new_tokens
    reasons = [
        finish_reason(generated[parent] + [token], settings, stop, last)
        for parent, token in zip(parents.tolist(), tokens.tolist())
    ]
    return Candidates(scores, parents, tokens, reasons)


def finish_reason(
    generated: list[int], settings: GenerationSettings, stop: StopCheck | None, last: bool
) -> FinishReason | None:
    """transformers' stopping criteria for one continuation: eos, a stop check, max length."""
    if generated[-1] in settings.eos_token_ids:
        return "eos"
    if stop is not None and stop(generated):
        return "stop"
    return "length" if last else None


def running_for_next_step(candidates: Candidates, nb: int) -> Tensor:
    """Indices (nb,) of the best continuations that do not end: the next step's beams."""
    return best(masked_scores(candidates), nb)[1]


def masked_scores(candidates: Candidates) -> Tensor:
    """Running scores with ended continuations pushed down by MASK, as transformers keeps them."""
    return candidates.scores + candidates.hits.to(torch.float32) * MASK


def update_finished(
    finished: Finished,
    candidates: Candidates,
    beams: Beams,
    generated_len: int,
    prompt_len: int,
    settings: GenerationSettings,
) -> tuple[Finished, list[int]]:
    """Merge this step's ended continuations into the finished set; also return which candidates entered.

    Only continuations among the top `num_beams` may finish (the rest exist so that enough beams go
    on). transformers' other two masks (a full set with early_stopping=True, no improvement possible)
    can only fire in a batch whose other prompts still run; with one prompt the loop has already stopped.
    """
    nb = settings.num_beams
    ended = candidates.hits
    ended[nb:] = False  # (K,) did_top_num_beams_just_finished
    penalised = candidates.scores / (generated_len**settings.length_penalty)
    penalised = penalised + (~ended) * MASK
    merged_scores, merged = best(torch.cat([finished.scores, penalised]), nb)
    merged_done = torch.cat([finished.done, ended])[merged]
    sequences, entered = [], []
    for index, score in zip(merged.tolist(), merged_scores.tolist()):
        if index < nb:
            sequences.append(finished.sequences[index])
            continue
        index -= nb
        generated = beams.sequences[int(candidates.parents[index]), prompt_len : beams.length].tolist()
        reason = candidates.reasons[index] or "length"
        sequences.append(Sequence((*generated, int(candidates.tokens[index])), score, reason))
        if ended[index]:
            entered.append(index)
    return Finished(merged_scores, merged_done, sequences), entered


def next_beams(beams: Beams, candidates: Candidates, chosen: Tensor) -> Beams:
    """The chosen continuations as the beams of the next step."""
    sequences = beams.sequences[candidates.parents[chosen]]  # (nb, T + max_new)
    sequences[:, beams.length] = candidates.tokens[chosen]
    return Beams(sequences, masked_scores(candidates)[chosen], beams.length + 1)


def can_improve(beams: Beams, finished: Finished, generated_len: int, settings: GenerationSettings) -> bool:
    """transformers' early-stop heuristic: could the best running beam still beat the worst finished one?

    early_stopping=False assumes the running beam ends now; "never" with a positive length penalty
    assumes it grows to max_new_tokens, where the penalty favours it most.
    """
    if settings.early_stopping == "never" and settings.length_penalty > 0.0:
        hypothetical_len = settings.max_new_tokens
    else:
        hypothetical_len = generated_len
    best_possible = beams.scores[0] / (hypothetical_len**settings.length_penalty)
    worst_finished = torch.where(finished.done, finished.scores.min(), MASK)  # (nb,)
    return bool((best_possible > worst_finished).any())


def has_unfinished(improvable: bool, finished: Finished, candidates: Candidates, settings: GenerationSettings) -> bool:
    """Go on while a beam can improve, the set is open (early_stopping=True), and some beam continues."""
    full = bool(finished.done.all()) and settings.early_stopping is True
    return improvable and not full and not bool(candidates.hits.all())


def returned(finished: Finished, count: int) -> list[Sequence]:
    """The `count` best finished hypotheses, best first; a slot never filled (as transformers returns
    it: no tokens, score MASK) only when too few continuations had a finite score."""
    return [seq if seq is not None else Sequence((), MASK, "length") for seq in finished.sequences[:count]]


def reorder(stepper: Stepper, parents: Tensor, device: torch.device) -> None:
    """Make the KV cache's rows follow the new beams' parents (nb,); nothing to do when none moved."""
    if not torch.equal(parents, torch.arange(len(parents))):
        stepper.reorder(parents.to(device))


def hypotheses(candidates: Candidates, chosen: Tensor, entered: list[int]) -> tuple[Hypothesis, ...]:
    """Every continuation considered this step: the new beams in beam order, then the rest best first."""
    hits = candidates.hits.tolist()
    running = [index for index in chosen.tolist() if not hits[index]]
    order = running + [index for index in range(len(candidates.reasons)) if index not in running]

    def status(index: int) -> HypothesisStatus:
        return "running" if index in running else "finished" if index in entered else "pruned"

    return tuple(
        Hypothesis(int(candidates.parents[i]), int(candidates.tokens[i]), float(candidates.scores[i]), status(i))
        for i in order
    )
