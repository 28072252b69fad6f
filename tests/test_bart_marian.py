"""Our BART and Marian equal transformers' on the same random checkpoints: teacher-forced logits over a
padded source batch, cached decoding, greedy and beam generation token for token, and every layout
transformers saves (tied or not, shared or separate vocabularies, bare BartModel / MarianModel)."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from transformers import (
    BartConfig,
    BartForConditionalGeneration,
    BartModel,
    MarianConfig,
    MarianModel,
    MarianMTModel,
)
from transformers.models.marian.modeling_marian import MarianSinusoidalPositionalEmbedding

from helpers_models import assert_logits_match, load_ours, randomize
from lmtui.checkpoint import open_checkpoint
from lmtui.decoding.beam import beam_search
from lmtui.decoding.records import Sequence
from lmtui.decoding.search import token_search
from lmtui.decoding.settings import GenerationSettings
from lmtui.decoding.stepper import EncoderDecoderStepper
from lmtui.errors import LmtuiError
from lmtui.models import bart, family_for, marian
from lmtui.models.loading import load_model

SOURCE = [5, 17, 42, 8, 23, 61, 9, 30]
NEW = 10
SCORE_TOL = 1e-4
FORCED_BOS = 11
SMALL = dict(vocab_size=96, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
             decoder_attention_heads=4, encoder_ffn_dim=48, decoder_ffn_dim=40, max_position_embeddings=64,
             forced_eos_token_id=None)
BART_IDS = dict(pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2)
MARIAN_IDS = dict(pad_token_id=3, eos_token_id=0, decoder_start_token_id=3)

# name: (class, config, seed); each seed picked so that greedy search does not repeat one token from the start
CONFIGS: dict[str, tuple[type[nn.Module], Any, int]] = {
    "bart-tied": (BartForConditionalGeneration, BartConfig(**SMALL, **BART_IDS), 0),
    "bart-untied-scaled-relu": (BartForConditionalGeneration, BartConfig(
        **{**SMALL, "encoder_layers": 3, "decoder_layers": 1, "encoder_attention_heads": 2,
           "decoder_attention_heads": 8}, **BART_IDS,
        tie_word_embeddings=False, scale_embedding=True, activation_function="relu"), 0),
    "bart-gelu-new-scaled": (BartForConditionalGeneration, BartConfig(
        **SMALL, **BART_IDS, activation_function="gelu_new", scale_embedding=True), 6),
    "marian-shared-tied-swish": (MarianMTModel, MarianConfig(
        **SMALL, **MARIAN_IDS, scale_embedding=True, activation_function="swish"), 1),
    "marian-shared-untied": (MarianMTModel, MarianConfig(
        **{**SMALL, "decoder_layers": 3}, **MARIAN_IDS, tie_word_embeddings=False), 2),
    "marian-separate-vocab-untied": (MarianMTModel, MarianConfig(
        **{**SMALL, "encoder_layers": 1, "decoder_layers": 3, "decoder_attention_heads": 8}, **MARIAN_IDS,
        share_encoder_decoder_embeddings=False, decoder_vocab_size=72, tie_word_embeddings=False,
        scale_embedding=True, activation_function="relu"), 3),
    "marian-separate-vocab-tied-odd-width": (MarianMTModel, MarianConfig(
        **{**SMALL, "d_model": 27, "encoder_attention_heads": 3, "decoder_attention_heads": 9}, **MARIAN_IDS,
        share_encoder_decoder_embeddings=False, decoder_vocab_size=80, scale_embedding=True), 1),
}


@dataclass
class Pair:
    ours: nn.Module
    theirs: nn.Module
    folder: Path

    @property
    def start(self) -> int:
        return self.theirs.config.decoder_start_token_id

    @property
    def pad(self) -> int:
        return self.theirs.config.pad_token_id

    @property
    def target_vocab(self) -> int:
        return self.theirs.lm_head.out_features


def randomized(name: str) -> nn.Module:
    """`randomize`'s weights, but LayerNorm shifts centred on 0: shifts around 1 would add one large
    constant vector to every post-LN output, and greedy search would repeat one token forever. The
    final_logits_bias is a buffer, which `randomize` leaves at zero, where dropping it would go unseen.
    Marian's sinusoid tables are (frozen) parameters: they get their values back, as a reload would."""
    model_class, config, seed = CONFIGS[name]
    model = randomize(model_class(config), std=0.2, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter_name, parameter in model.named_parameters():
            if "norm" in parameter_name and parameter_name.endswith(".bias"):
                parameter.normal_(0.0, 0.1, generator=generator)
        model.final_logits_bias.normal_(0.0, 0.2, generator=generator)
        for module in model.modules():
            if isinstance(module, MarianSinusoidalPositionalEmbedding):
                module.weight.copy_(module.create_weight())
    return model


@pytest.fixture(scope="module", params=list(CONFIGS))
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Pair:
    folder = tmp_path_factory.mktemp(request.param)
    randomized(request.param).save_pretrained(folder)
    return Pair(load_ours(folder), CONFIGS[request.param][0].from_pretrained(folder).eval(), folder)


def right_padded(pair: Pair, lengths: list[int], total: int) -> tuple[Tensor, Tensor]:
    """A source batch (B, total) padded on the right with pad_token_id, as the tokenizers pad, and its key mask."""
    ids = torch.randint(4, 60, (len(lengths), total), generator=torch.Generator().manual_seed(2))
    mask = (torch.arange(total)[None] < torch.tensor(lengths)[:, None]).long()  # (B, total)
    return ids.masked_fill(mask == 0, pair.pad), mask


def decoder_inputs(pair: Pair, batch: int, length: int) -> Tensor:
    ids = torch.randint(4, pair.target_vocab, (batch, length), generator=torch.Generator().manual_seed(3))
    ids[:, 0] = pair.start
    return ids


def test_registered() -> None:
    assert family_for({"model_type": "bart"}) is bart and family_for({"model_type": "marian"}) is marian
    assert bart.KIND == marian.KIND == "encoder-decoder"


@torch.no_grad()
def test_teacher_forced_logits_with_padded_source(pair: Pair) -> None:
    src, mask = right_padded(pair, [12, 9, 5], total=12)
    dec = decoder_inputs(pair, 3, 7)
    theirs = pair.theirs(input_ids=src, attention_mask=mask, decoder_input_ids=dec)
    assert_logits_match(pair.ours(src, dec, key_mask=mask), theirs.logits)
    real = mask.bool()
    assert_logits_match(pair.ours.encode(src, mask)[real], theirs.encoder_last_hidden_state[real])
    # the mask is what keeps padding out: the padded row equals its unpadded source alone
    alone = pair.ours(src[2:, :5], dec[2:])
    assert_logits_match(pair.ours(src, dec, key_mask=mask)[2:], alone)
    assert (pair.ours(src, dec)[2:] - alone).abs().max() > 1e-2


@torch.no_grad()
def test_prefill_then_cached_steps_equal_teacher_forced(pair: Pair) -> None:
    src, mask = right_padded(pair, [10, 6], total=10)
    dec = decoder_inputs(pair, 2, 9)
    cross = pair.ours.cross_cache(pair.ours.encode(src, mask))
    cache = pair.ours.new_cache(batch=2, max_len=9)
    pieces = [pair.ours.decode(dec[:, :3], cross, encoder_mask=mask, cache=cache)]
    pieces += [pair.ours.decode(dec[:, t : t + 1], cross, encoder_mask=mask, cache=cache) for t in range(3, 9)]
    assert cache.length == 9
    expected = pair.theirs(input_ids=src, attention_mask=mask, decoder_input_ids=dec).logits
    assert_logits_match(torch.cat(pieces, dim=1), expected)


def test_cross_attention_keys_and_values_are_computed_once(pair: Pair) -> None:
    calls = {"k": 0, "v": 0, "q": 0}
    hooks = []
    for layer in pair.ours.model.decoder.layers:
        for name in calls:
            def count(*_: Any, name: str = name) -> None:
                calls[name] += 1

            hooks.append(getattr(layer.encoder_attn, f"{name}_proj").register_forward_hook(count))
    try:
        stepper = EncoderDecoderStepper(pair.ours, SOURCE, pair.start, max_new_tokens=6)
        stepper.prefill(rows=3)
        for _ in range(5):
            stepper.step(torch.tensor([7, 8, 9]))
    finally:
        for hook in hooks:
            hook.remove()
    layers = len(pair.ours.model.decoder.layers)
    assert calls == {"k": layers, "v": layers, "q": 6 * layers}


def drain(search: Generator[Any, None, list[Sequence]]) -> tuple[list[Any], list[Sequence]]:
    steps = []
    while True:
        try:
            steps.append(next(search))
        except StopIteration as done:
            return steps, done.value


def generate(pair: Pair, **options: Any) -> Any:
    """transformers' generation from SOURCE; the decoder starts from decoder_start_token_id."""
    defaults = dict(max_new_tokens=NEW, do_sample=False, decoder_start_token_id=pair.start, pad_token_id=pair.pad,
                    forced_bos_token_id=None, forced_eos_token_id=None)
    return pair.theirs.generate(torch.tensor([SOURCE]), **{**defaults, **options})


def generated(sequences: Tensor, eos: int) -> list[list[int]]:
    """Rows without the start token, cut after the first eos."""
    rows = []
    for row in sequences[:, 1:].tolist():
        rows.append(row[: row.index(eos) + 1] if eos in row else row)
    return rows


def greedy_settings(eos: int, forced_bos: int | None = None, forced_eos: int | None = None) -> GenerationSettings:
    forced_eos_ids = () if forced_eos is None else (forced_eos,)
    return GenerationSettings(max_new_tokens=NEW, eos_token_ids=(eos,), pad_token_id=eos,
                              forced_bos_token_id=forced_bos, forced_eos_token_ids=forced_eos_ids)


def free_greedy(pair: Pair, forced_bos: int | None = None) -> list[int]:
    """transformers' greedy tokens with no eos at all."""
    return generate(pair, eos_token_id=None, forced_bos_token_id=forced_bos)[0, 1:].tolist()


def ending_midway(tokens: list[int]) -> int:
    """The first token that differs from all before it, after the first and before the last step:
    as eos it ends greedy search mid-way."""
    return next(token for step, token in enumerate(tokens[1:-1], start=1) if token not in tokens[:step])


# every config plainly; forced tokens (processors shared with decoders, so not the model's concern) on a few
GENERATION_CASES = [("plain", name) for name in CONFIGS] + [
    ("forced-eos", "bart-tied"), ("forced-eos", "marian-separate-vocab-tied-odd-width"),
    ("forced-bos", "bart-untied-scaled-relu"), ("forced-bos", "marian-shared-tied-swish"),
]


@pytest.mark.parametrize(("variant", "pair"), GENERATION_CASES, indirect=["pair"])
def test_greedy_equals_generate(pair: Pair, variant: str) -> None:
    forced_bos = forced_eos = None
    free = free_greedy(pair)
    if variant == "forced-bos":
        forced_bos = FORCED_BOS if free[0] != FORCED_BOS else FORCED_BOS + 1
        free = free_greedy(pair, forced_bos)
    eos = ending_midway(free)
    if variant == "forced-eos":  # eos the model never picks: the run reaches the last step, where it is forced
        eos = forced_eos = next(token for token in range(4, 60) if token not in free)
    expected = generated(generate(pair, eos_token_id=eos, forced_bos_token_id=forced_bos,
                                  forced_eos_token_id=forced_eos), eos)[0]
    stepper = EncoderDecoderStepper(pair.ours, SOURCE, pair.start, NEW)
    steps, sequences = drain(token_search(stepper, [pair.start], greedy_settings(eos, forced_bos, forced_eos)))
    assert list(sequences[0].token_ids) == expected == [step.token_id for step in steps]
    assert expected[-1] == eos and sequences[0].finish_reason == "eos"
    assert len(expected) == NEW if variant == "forced-eos" else len(expected) < NEW
    if variant == "forced-bos":
        assert expected[0] == forced_bos


def liked_tokens(pair: Pair, prefix: list[int]) -> list[int]:
    """The decoder's favourite next tokens after `prefix`, best first."""
    with torch.no_grad():
        logits = pair.theirs(input_ids=torch.tensor([SOURCE]), decoder_input_ids=torch.tensor([prefix])).logits
    return logits[0, -1].topk(4).indices.tolist()


@pytest.mark.parametrize(("variant", "pair"), GENERATION_CASES, indirect=["pair"])
def test_beam_equals_generate(pair: Pair, variant: str) -> None:
    forced_bos = FORCED_BOS if variant == "forced-bos" else None
    prefix = [pair.start] if forced_bos is None else [pair.start, forced_bos]
    eos = liked_tokens(pair, prefix)[1]  # likely enough to end some hypotheses early, not all at once
    forced_eos = eos if variant == "forced-eos" else None
    # a short eos-ended hypothesis wins at 0.5; at 1.0 long ones do, which only the forced eos ends
    length_penalty = 1.0 if forced_eos is not None else 0.5
    options = dict(num_beams=4, num_return_sequences=3, length_penalty=length_penalty, early_stopping=False)
    out = generate(pair, **options, eos_token_id=eos, forced_bos_token_id=forced_bos, forced_eos_token_id=forced_eos,
                   output_scores=True, return_dict_in_generate=True)
    settings = GenerationSettings(strategy="beam", max_new_tokens=NEW, eos_token_ids=(eos,), pad_token_id=pair.pad,
                                  forced_bos_token_id=forced_bos,
                                  forced_eos_token_ids=() if forced_eos is None else (forced_eos,), **options)
    stepper = EncoderDecoderStepper(pair.ours, SOURCE, pair.start, NEW)
    steps, sequences = drain(beam_search(stepper, [pair.start], settings))
    assert [list(s.token_ids) for s in sequences] == generated(out.sequences, eos)
    assert [s.score for s in sequences] == pytest.approx(out.sequences_scores.tolist(), abs=SCORE_TOL)
    assert len(steps) == len(out.scores)
    # hypotheses really end mid-way, so the finished set is exercised, not only the length limit
    assert any(h.status == "finished" for step in steps[:-1] for h in step.hypotheses)
    if forced_bos is not None:
        assert all(s.token_ids[0] == forced_bos for s in sequences)
    if forced_eos is None:
        assert any(s.finish_reason == "eos" and len(s.token_ids) < NEW for s in sequences)
    else:
        assert all(s.token_ids[-1] == eos for s in sequences) and any(len(s.token_ids) == NEW for s in sequences)


def test_sinusoids_equal_transformers() -> None:
    for positions, width in [(64, 32), (50, 27), (512, 512)]:
        expected = MarianSinusoidalPositionalEmbedding(positions, width).create_weight()
        assert torch.equal(marian.sinusoids(positions, width), expected)


def test_ties_and_parameter_count(pair: Pair) -> None:
    """Tied tensors are one parameter, as in transformers (whose Marian position tables are frozen
    parameters; ours are buffers)."""
    ours, theirs = pair.ours, pair.theirs
    positions = 0
    if isinstance(theirs, MarianMTModel):
        positions = sum(p.numel() for name, p in theirs.named_parameters() if "embed_positions" in name)
        assert positions == 2 * theirs.config.max_position_embeddings * theirs.config.d_model
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters()) - positions
    tied = theirs.config.tie_word_embeddings
    assert (ours.lm_head.weight is ours.model.decoder.embed_tokens.weight) == tied
    assert (ours.model.encoder.embed_tokens.weight is ours.model.decoder.embed_tokens.weight) == (
        tied and getattr(theirs.config, "share_encoder_decoder_embeddings", True))


@pytest.mark.parametrize(("name", "bare_class"), [("bart-tied", BartModel), ("marian-shared-tied-swish", MarianModel)])
@torch.no_grad()
def test_bare_model_save(tmp_path: Path, name: str, bare_class: type[nn.Module]) -> None:
    """BartModel / MarianModel saves: no `model.` prefix, no lm_head or final_logits_bias (transformers
    then uses zeros), and MarianModel stores its sinusoid tables."""
    model_class, config, _ = CONFIGS[name]
    full = tmp_path / "full"
    randomized(name).save_pretrained(full)
    bare = tmp_path / "bare"
    bare_class.from_pretrained(full).save_pretrained(bare)
    names = set(load_file(bare / "model.safetensors"))
    assert "final_logits_bias" not in names and not any(n.startswith(("model.", "lm_head")) for n in names)
    assert "encoder.embed_positions.weight" in names  # learned in BART; in Marian the sinusoids, skipped
    ours, theirs = load_ours(bare), model_class.from_pretrained(bare).eval()
    assert ours.final_logits_bias is None
    src, dec = torch.tensor([SOURCE]), torch.tensor([[config.decoder_start_token_id, 7, 8, 9]])
    assert_logits_match(ours(src, dec), theirs(input_ids=src, decoder_input_ids=dec).logits)


def test_missing_tensor_is_a_clean_error(tmp_path: Path) -> None:
    folder = tmp_path / "bart"
    randomized("bart-tied").save_pretrained(folder)
    state = load_file(folder / "model.safetensors")
    del state["model.encoder.layers.0.fc1.weight"]
    state["model.decoder.layers.0.fc2.bias"] = torch.zeros(3)
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(LmtuiError) as error:
        load_model(open_checkpoint(folder), None, torch.device("cpu"))
    message = str(error.value)
    assert "missing model.encoder.layers.0.fc1.weight" in message
    assert "wrong shape model.decoder.layers.0.fc2.bias [3] (config needs [32])" in message
    assert "\n" not in message


def test_bfloat16_load(pair: Pair) -> None:
    model = load_model(open_checkpoint(pair.folder), torch.bfloat16, torch.device("cpu"))
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert model.final_logits_bias.dtype == torch.bfloat16
    with torch.no_grad():
        logits = model(torch.tensor([SOURCE]), decoder_inputs(pair, 1, 4))
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits).all()


def test_config_errors_name_the_field() -> None:
    config = BartConfig(**SMALL, **BART_IDS).to_dict()
    with pytest.raises(LmtuiError, match="unsupported activation 'mish_x'"):
        bart.Config.from_hf({**config, "activation_function": "mish_x"})
    with pytest.raises(LmtuiError, match="d_model .* is not a multiple of 5"):
        marian.Config.from_hf({**config, "decoder_attention_heads": 5})

