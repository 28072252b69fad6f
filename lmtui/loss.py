"""Teacher-forced loss: how surprised the model is by each token of a text it is shown whole.

Every scored token gets `loss`, the cross-entropy with label smoothing ε exactly as
`torch.nn.functional.cross_entropy(label_smoothing=ε)` defines it, and `nll`, the same with ε = 0.
F.cross_entropy smooths the one-hot target into q = (1 - ε)·onehot + ε/V over the model's V output ids,
so loss = Σ_j q_j·(-log p_j) = (1 - ε)·nll + ε·uniform_nll, where uniform_nll is the mean of -log p over
the vocabulary: ε moves weight from "be sure of the right token" to "keep every token somewhat likely".
`LossResult.smoothed_target` gives q itself, so a face can show what ε did.

What is scored depends on the kind of model:
- decoders: each token after the first, from its prefix (the first has none and is not listed);
- encoder-decoders: every target token given the source, the decoder reading the start token then the
  target shifted right;
- encoders: the pseudo-log-likelihood: each token is masked in turn and scored from the rest of the text
  (one forward pass per token, batched). Special tokens ([CLS], [SEP], <s>, </s>, padding, typed masks) are
  not scored: they frame the text rather than belong to it. An unknown token is scored like any other.

Logits are upcast to float32 before the softmax, whatever the model's dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lmtui.errors import InvalidOption, LmtuiError
from lmtui.inspect.inputs import TokenInputs
from lmtui.masked import mask_token
from lmtui.tokenizer import SpecialToken, Tokenizer

TOP = 3  # alternatives listed per token
ROWS_PER_CHUNK = 512  # logits rows upcast to float32 at once
LOGITS_BUDGET = 2**25  # logits elements one batch of masked copies may produce (128 MiB in float32)


@dataclass(frozen=True)
class Alternative:
    id: int
    piece: str  # the vocabulary entry; "" for an id past the tokenizer's vocabulary
    prob: float


@dataclass(frozen=True)
class TokenLoss:
    position: int  # index of the token in the ids scored: the text (decoders, encoders) or the target
    id: int
    piece: str
    loss: float  # cross-entropy with label smoothing
    nll: float  # -log p(token): the loss with ε = 0
    uniform_nll: float  # mean of -log p over the vocabulary: what ε mixes in
    prob: float
    rank: int  # 1 when the model's top choice is this token; ties share the better rank
    alternatives: list[Alternative]  # the model's top choices here, most likely first


@dataclass(frozen=True)
class TargetEntry:
    id: int
    piece: str
    model_prob: float  # p: what the model gives the id
    target_prob: float  # q: what the smoothed target asks of it


@dataclass(frozen=True)
class SmoothedTarget:
    """The distribution F.cross_entropy compares the model with, for one token."""

    entries: list[TargetEntry]  # the true id first, then the model's top alternatives that are not it
    other_prob: float  # ε/V: what every id not listed gets
    others: int  # how many ids that is


@dataclass(frozen=True)
class LossResult:
    kind: str  # decoder, encoder (pseudo-log-likelihood) or encoder-decoder
    label_smoothing: float
    tokens: list[TokenLoss]
    mean_loss: float
    mean_nll: float
    perplexity: float  # exp(mean_nll)
    vocab_size: int  # V: the model's output ids, which label smoothing spreads ε over

    def smoothed_target(self, index: int) -> SmoothedTarget:
        """q for `tokens[index]`: 1 - ε + ε/V on the true id, ε/V on every other id (sums to 1)."""
        token, eps, V = self.tokens[index], self.label_smoothing, self.vocab_size
        spread = eps / V
        entries = [TargetEntry(token.id, token.piece, token.prob, 1 - eps + spread)]
        entries += [TargetEntry(a.id, a.piece, a.prob, spread) for a in token.alternatives if a.id != token.id]
        return SmoothedTarget(entries, spread, V - len(entries))


Scored = tuple[list[TokenLoss], int]  # the scored tokens and V, the width of the logits


def score_tokens(model: nn.Module, kind: str, tokenizer: Tokenizer, inputs: TokenInputs,
                 label_smoothing: float = 0.0, decoder_start_id: int | None = None) -> LossResult:
    """Score `inputs` teacher-forced; the caller has checked they fit the model's context."""
    check_label_smoothing(label_smoothing)
    if inputs.target_ids is not None and kind != "encoder-decoder":
        article = "an" if kind == "encoder" else "a"
        raise InvalidOption(f"a target is read only by encoder-decoders; this model is {article} {kind}")
    with torch.inference_mode():
        if kind == "decoder":
            tokens, vocab_size = _decoder_tokens(model, tokenizer, inputs.ids, label_smoothing)
        elif kind == "encoder-decoder":
            tokens, vocab_size = _seq2seq_tokens(model, tokenizer, inputs, label_smoothing, decoder_start_id)
        else:
            tokens, vocab_size = _pseudo_tokens(model, tokenizer, inputs.ids, label_smoothing)
    return _result(kind, label_smoothing, tokens, vocab_size)


def check_label_smoothing(value: float) -> None:
    """ε = 1 would ask for the uniform distribution alone, which no longer says which token was right."""
    if not 0.0 <= value < 1.0:  # also refuses NaN
        raise InvalidOption(f"label smoothing must be in [0, 1), not {value}")


def _decoder_tokens(model: nn.Module, tokenizer: Tokenizer, ids: tuple[int, ...], eps: float) -> Scored:
    """Each token from its prefix: one forward pass, logits at t predict the token at t + 1."""
    if len(ids) < 2:
        raise InvalidOption(f"the text is {len(ids)} token(s); a decoder scores each token after the first "
                            "from its prefix, so it needs at least two")
    x = torch.tensor([ids], device=_device(model))  # (1, T)
    logits = model(x)[0, :-1]  # (T-1, V)
    return _score(tokenizer, logits, list(ids[1:]), list(range(1, len(ids))), eps), logits.shape[-1]


def _seq2seq_tokens(model: nn.Module, tokenizer: Tokenizer, inputs: TokenInputs, eps: float,
                    start_id: int | None) -> Scored:
    """Every target token given the source; the decoder reads [start] + target[:-1]."""
    target = inputs.target_ids
    if target is None:
        raise InvalidOption("an encoder-decoder scores a target given the source: give the target text too")
    if not target:
        raise InvalidOption("the target has no tokens to score")
    if not inputs.ids:
        raise InvalidOption("the source has no tokens")
    if start_id is None:
        raise InvalidOption("this checkpoint names no decoder start token (decoder_start_token_id), so its "
                            "decoder cannot be fed")
    device = _device(model)
    source = torch.tensor([inputs.ids], device=device)  # (1, S)
    decoder_ids = torch.tensor([[start_id, *target[:-1]]], device=device)  # (1, T)
    logits = model(source, decoder_ids)[0]  # (T, V)
    return _score(tokenizer, logits, list(target), list(range(len(target))), eps), logits.shape[-1]


def _pseudo_tokens(model: nn.Module, tokenizer: Tokenizer, ids: tuple[int, ...], eps: float) -> Scored:
    """Pseudo-log-likelihood: one copy of the text per scored token, that token masked in the copy."""
    mask = _pll_mask(model, tokenizer)
    framing = _framing_ids(tokenizer)
    positions = [i for i, token in enumerate(ids) if token not in framing]
    if not positions:
        raise InvalidOption("the text has no tokens to score besides special tokens")
    text = torch.tensor(ids, device=_device(model))  # (T,)
    per_batch = max(1, LOGITS_BUDGET // (len(ids) * model.config.vocab_size))
    tokens: list[TokenLoss] = []
    for start in range(0, len(positions), per_batch):
        chunk = torch.tensor(positions[start:start + per_batch], device=text.device)  # (b,)
        rows = torch.arange(len(chunk), device=text.device)  # (b,)
        copies = text.repeat(len(chunk), 1)  # (b, T)
        copies[rows, chunk] = mask.id
        logits = model(copies)[rows, chunk]  # (b, V): each copy's logits at its masked position
        tokens += _score(tokenizer, logits, [ids[p] for p in chunk.tolist()], chunk.tolist(), eps)
    return tokens, logits.shape[-1]


def _pll_mask(model: nn.Module, tokenizer: Tokenizer) -> SpecialToken:
    """fill-mask's checks (an MLM head, a mask token), with a word on why the loss needs them."""
    try:
        return mask_token(model, tokenizer)
    except LmtuiError as error:
        raise LmtuiError(f"an encoder's loss is a pseudo-log-likelihood, which predicts masked tokens as "
                         f"fill-mask does: {error}") from None


def _framing_ids(tokenizer: Tokenizer) -> set[int]:
    """Special tokens that frame or pad a text (not <unk>, which stands for a piece of it)."""
    special = tokenizer.special
    named = (special.bos, special.eos, special.pad, special.mask, special.cls, special.sep)
    return {token.id for token in named if token is not None}


def _score(tokenizer: Tokenizer, logits: Tensor, targets: list[int], positions: list[int],
           eps: float) -> list[TokenLoss]:
    """Per-row losses of logits (N, V) against targets (N,), a chunk of rows at a time in float32."""
    tokens: list[TokenLoss] = []
    for start in range(0, len(targets), ROWS_PER_CHUNK):
        end = start + ROWS_PER_CHUNK
        rows = logits[start:end].float()  # (n, V)
        labels = torch.tensor(targets[start:end], device=rows.device)  # (n,)
        tokens += _score_rows(tokenizer, rows, labels, positions[start:end], eps)
    return tokens


def _score_rows(tokenizer: Tokenizer, logits: Tensor, labels: Tensor, positions: list[int],
                eps: float) -> list[TokenLoss]:
    """Losses, probability, rank and top alternatives for float32 logits (n, V) and labels (n,)."""
    loss = F.cross_entropy(logits, labels, label_smoothing=eps, reduction="none")  # (n,)
    nll = F.cross_entropy(logits, labels, reduction="none")  # (n,)
    log_probs = logits.log_softmax(-1)  # (n, V)
    uniform = -log_probs.mean(-1)  # (n,)
    true_logit = logits.gather(-1, labels[:, None])  # (n, 1)
    prob = log_probs.gather(-1, labels[:, None])[:, 0].exp()  # (n,)
    rank = 1 + (logits > true_logit).sum(-1)  # (n,)
    top_probs, top_ids = log_probs.topk(min(TOP, logits.shape[-1]), dim=-1)  # (n, k)
    top_probs = top_probs.exp()
    columns = zip(positions, labels.tolist(), loss.tolist(), nll.tolist(), uniform.tolist(), prob.tolist(),
                  rank.tolist(), top_ids.tolist(), top_probs.tolist())
    return [
        TokenLoss(position, id, _piece(tokenizer, id), row_loss, row_nll, row_uniform, row_prob, row_rank,
                  [Alternative(i, _piece(tokenizer, i), p) for i, p in zip(ids, probs)])
        for position, id, row_loss, row_nll, row_uniform, row_prob, row_rank, ids, probs in columns
    ]


def _result(kind: str, eps: float, tokens: list[TokenLoss], vocab_size: int) -> LossResult:
    mean_loss = sum(t.loss for t in tokens) / len(tokens)
    mean_nll = sum(t.nll for t in tokens) / len(tokens)
    perplexity = math.exp(mean_nll) if mean_nll < 709 else math.inf  # exp overflows a float past ~709.78
    return LossResult(kind, eps, tokens, mean_loss, mean_nll, perplexity, vocab_size)


def _piece(tokenizer: Tokenizer, id: int) -> str:
    return tokenizer.id_to_piece(id) or ""


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device
