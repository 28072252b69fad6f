"""Every layer's and head's attention, computed lazily from one recorded forward pass.

The forward runs on the fast kernels (SDPA / flash) while `record_attention` keeps each call's
queries and keys; a head's probabilities are recomputed from them only when asked for, in float32,
so a long prompt costs layers x (queries + keys) memory instead of layers x heads x T x S.
Probabilities are softmax(q k^T * scale + bias) over the keys a query may see, as transformers'
eager attention computes them; cells a query may not see are reported as masked.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lmtui.errors import InvalidOption
from lmtui.inspect.inputs import TokenInputs
from lmtui.models.layers import AttentionCall, record_attention

CHUNK_CELLS = 2**24  # heads x queries x keys computed at once by summaries (64 MiB of float32)


@dataclass(frozen=True)
class AttentionMap:
    kind: str  # self (decoders, encoders); encoder, decoder or cross (encoder-decoders)
    layer: int
    head: int
    queries: list[str]  # pieces down the side
    keys: list[str]  # pieces along the top
    first_query: int  # index of the first row shown (the map may be a window of the rows)
    weights: list[list[float]]  # (queries, keys); each row sums to 1, masked cells are 0
    masked: list[list[bool]]  # True where the query may not look: a future token or padding


@dataclass(frozen=True)
class HeadSummary:
    """What a head does, in four numbers, averaged over its queries."""

    layer: int
    head: int
    entropy: float  # nats; 0 = each query looks at one key, log(keys) = spread evenly
    first: float  # weight on the first real key (many heads park attention there)
    previous: float | None  # weight on the key just before the query; self-attention only
    itself: float | None  # weight on the query's own position; self-attention only


@dataclass(frozen=True)
class Side:
    """The tokens along one side of a map; padding (False in `real`) is never attended to or read."""

    pieces: list[str]
    real: list[bool]

    @property
    def first_real(self) -> int:
        return self.real.index(True)


class AttentionView:
    """The recorded attention of one input, by kind: ask for a head's map or all heads' summaries."""

    def __init__(self, calls: dict[str, list[AttentionCall]], sides: dict[str, tuple[Side, Side]]) -> None:
        self._calls = calls
        self._sides = sides  # kind -> (queries, keys)

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(self._calls)

    def layers(self, kind: str) -> int:
        return len(self._kind(kind))

    def heads(self, kind: str) -> int:
        return int(self._kind(kind)[0].q.shape[1])

    def map(self, kind: str, layer: int, head: int, rows: tuple[int, int] | None = None) -> AttentionMap:
        """One head's probabilities; `rows` (start, stop) picks a window of queries for long inputs.
        A padding query's row is all masked: its output is never read."""
        calls = self._kind(kind)
        layer = _index(layer, len(calls), f"layer (this model's {kind} attention has {len(calls)} layers)")
        call = calls[layer]
        n_heads, n_queries = call.q.shape[1], call.q.shape[2]
        head = _index(head, n_heads, f"head (each layer has {n_heads} heads)")
        start, stop = rows if rows is not None else (0, n_queries)
        start, stop = max(0, start), min(n_queries, stop)
        probs, allowed = probabilities(call, slice(head, head + 1), slice(start, stop))  # (1, t, S)
        queries, keys = self._sides[kind]
        real = torch.tensor(queries.real[start:stop], dtype=torch.bool, device=probs.device)[:, None]  # (t, 1)
        hidden = ~allowed[0] | ~real  # (t, S)
        return AttentionMap(kind, layer, head, queries.pieces[start:stop], keys.pieces, start,
                            probs[0].masked_fill(hidden, 0.0).tolist(), hidden.tolist())

    def summaries(self, kind: str) -> list[HeadSummary]:
        """Every head of every layer of this kind, layer by layer, over the real (not padding) queries."""
        calls = self._kind(kind)
        queries, keys = self._sides[kind]
        return [summary for layer, call in enumerate(calls)
                for summary in summarize(call, layer, kind != "cross", queries, keys)]

    def _kind(self, kind: str) -> list[AttentionCall]:
        if kind not in self._calls:
            raise InvalidOption(f"no {kind!r} attention here: this input has {', '.join(self._calls)}")
        return self._calls[kind]


def record(model: nn.Module, model_kind: str, inputs: TokenInputs, start_id: int | None,
           piece: Callable[[int], str], source_piece: Callable[[int], str],
           pad_to: int = 0, pad_id: int | None = None) -> AttentionView:
    """Run the model once on `inputs` (batch of one, no cache) and keep every attention call.

    With `pad_to`, the text (an encoder-decoder's source) is padded to that many tokens as a batch
    would pad it, on the left for decoders and on the right otherwise, to show the padding mask.
    """
    device = next(model.parameters()).device
    ids, real = _padded(list(inputs.ids), pad_to, pad_id, left=model_kind == "decoder")
    key_mask = None if all(real) else torch.tensor([real], device=device).long()  # (1, S)
    text = Side([source_piece(i) for i in ids], real)
    with torch.inference_mode():
        if model_kind != "encoder-decoder":
            with record_attention() as calls:
                model(torch.tensor([ids], device=device), key_mask)
            return AttentionView({"self": calls}, {"self": (text, text)})
        with record_attention() as encoder:
            states = model.encode(torch.tensor([ids], device=device), key_mask)  # (1, S, C)
        if inputs.target_ids is None:
            return AttentionView({"encoder": encoder}, {"encoder": (text, text)})
        if start_id is None:
            raise InvalidOption("this encoder-decoder names no decoder_start_token_id (nor bos) to start from")
        decoder_ids = [start_id, *inputs.target_ids[:-1]]
        with record_attention() as decoder:
            model.decode(torch.tensor([decoder_ids], device=device), model.cross_cache(states), key_mask)
    target = Side([piece(i) for i in decoder_ids], [True] * len(decoder_ids))
    calls = {"encoder": encoder, "decoder": decoder[0::2], "cross": decoder[1::2]}  # each layer: self, then cross
    return AttentionView(calls, {"encoder": (text, text), "decoder": (target, target), "cross": (target, text)})


def _padded(ids: list[int], pad_to: int, pad_id: int | None, left: bool) -> tuple[list[int], list[bool]]:
    """The ids padded to `pad_to` tokens, and which of them are real."""
    extra = max(0, pad_to - len(ids))
    if extra and pad_id is None:
        raise InvalidOption("this tokenizer has no padding token, so the text cannot be padded")
    pads, real = [pad_id or 0] * extra, [True] * len(ids)
    return (pads + ids, [False] * extra + real) if left else (ids + pads, real + [False] * extra)


def probabilities(call: AttentionCall, heads: slice, rows: slice) -> tuple[Tensor, Tensor]:
    """Probabilities (h, t, S) of the chosen heads for the chosen query rows, in float32, and where
    each query may look (h or 1, t, S)."""
    n_heads, n_kv = call.q.shape[1], call.k.shape[1]
    q = call.q[0, heads, rows].float()  # (h, t, hs)
    kv_heads = torch.arange(n_heads)[heads] // (n_heads // n_kv)  # grouped-query heads share keys
    k = call.k[0, kv_heads.to(call.k.device)].float()  # (h, S, hs)
    scores = (q @ k.transpose(-1, -2)) * call.scale  # (h, t, S)
    allowed = _allowed(call, heads, rows)
    if call.mask is not None and call.mask.is_floating_point():  # a position bias (T5)
        scores = scores + _mask_rows(call.mask, heads, rows).float()
    probs = scores.masked_fill(~allowed, -math.inf).softmax(-1)
    return probs, allowed


def _allowed(call: AttentionCall, heads: slice, rows: slice) -> Tensor:
    """Where each query row may look, (h or 1, t, S) bool, from the mask SDPA was given."""
    T, S = call.q.shape[2], call.k.shape[2]
    device = call.q.device
    if call.mask is None:
        q_pos = torch.arange(T, device=device)[rows, None] + (S - T)  # (t, 1)
        k_pos = torch.arange(S, device=device)[None, :]  # (1, S)
        allowed = k_pos <= q_pos  # (t, S)
        return allowed[None] if call.causal else torch.ones_like(allowed)[None]  # (1, t, S)
    mask = _mask_rows(call.mask, heads, rows)
    return mask if mask.dtype == torch.bool else mask != torch.finfo(mask.dtype).min


def _mask_rows(mask: Tensor, heads: slice, rows: slice) -> Tensor:
    """The mask's (h or 1, t, S) block; masks shared by all heads have a head axis of 1."""
    return mask[0, heads if mask.shape[1] > 1 else slice(0, 1), rows]


def summarize(call: AttentionCall, layer: int, self_attention: bool, queries: Side, keys: Side) -> list[HeadSummary]:
    """Each head's summary over the real queries, computed over query chunks so no full
    (heads, T, S) tensor is made. "First" is the first real key."""
    n_heads, T, S = call.q.shape[1], call.q.shape[2], call.k.shape[2]
    device = call.q.device
    real_q = torch.tensor(queries.real, device=device)  # (T,)
    real_k = torch.tensor(keys.real, device=device)  # (S,)
    totals = torch.zeros(4, n_heads, dtype=torch.float64, device=device)  # entropy, first, previous, itself
    with_previous = 0
    step = max(1, CHUNK_CELLS // (n_heads * S))
    for start in range(0, T, step):
        rows = slice(start, min(T, start + step))
        probs, _ = probabilities(call, slice(None), rows)  # (nh, t, S)
        weight = real_q[rows].double()  # (t,): padding queries count for nothing
        totals[0] += (-torch.special.xlogy(probs, probs).sum(-1).double() * weight).sum(1)
        totals[1] += (probs[:, :, keys.first_real].double() * weight).sum(1)
        if self_attention:
            q_pos = torch.arange(rows.start, rows.stop, device=device) + (S - T)  # (t,)
            local = torch.arange(len(q_pos), device=device)
            totals[3] += (probs[:, local, q_pos].double() * weight).sum(1)
            has_previous = real_q[rows] & (q_pos >= 1) & real_k[(q_pos - 1).clamp(min=0)]  # (t,)
            totals[2] += probs[:, local[has_previous], q_pos[has_previous] - 1].double().sum(1)
            with_previous += int(has_previous.sum())
    means = (totals / int(real_q.sum())).tolist()
    previous = (totals[2] / max(1, with_previous)).tolist()
    return [
        HeadSummary(layer, head, means[0][head], means[1][head],
                    previous[head] if self_attention and with_previous else None,
                    means[3][head] if self_attention else None)
        for head in range(n_heads)
    ]


def _index(value: int, size: int, what: str) -> int:
    """A 0-based index where negative values count from the end, as Python's do."""
    if not -size <= value < size:
        raise InvalidOption(f"{value} is not a valid {what}")
    return value % size
