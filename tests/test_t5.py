"""Our T5 equals transformers' T5ForConditionalGeneration on the same random checkpoints: teacher-forced
logits over padded sources, cached decoding, greedy and beam search through EncoderDecoderStepper, and
every way transformers stores (or leaves out) the shared embedding and the head."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from transformers import DynamicCache, EncoderDecoderCache, T5Config, T5ForConditionalGeneration
from transformers.models.t5.modeling_t5 import T5Attention

from helpers_models import assert_logits_match, load_ours, randomize, token_ids
from lmtui.checkpoint import open_checkpoint
from lmtui.decoding.beam import beam_search
from lmtui.decoding.records import BeamStep, Sequence
from lmtui.decoding.search import token_search
from lmtui.decoding.settings import GenerationSettings
from lmtui.decoding.stepper import EncoderDecoderStepper
from lmtui.errors import LmtuiError
from lmtui.models.loading import load_model
from lmtui.models.t5 import Config, relative_position_bucket

VOCAB = 96
START = 0  # T5's decoder_start_token_id is its pad token
SOURCE = token_ids(1, 20, VOCAB, seed=5)[0].tolist()
NEW = 10
SCORE_TOL = 1e-4

# max_distance 12 < the 19 tokens a 20-token source spans: exact, logarithmic and last buckets all occur
BASE = dict(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, dropout_rate=0.0,
            relative_attention_num_buckets=16, relative_attention_max_distance=12,
            decoder_start_token_id=START, pad_token_id=0, eos_token_id=1)
# seed and std per config: picked so greedy output is varied (random tied T5s tend to repeat one token)
CONFIGS: dict[str, dict[str, Any]] = {
    "v1.0-relu-tied": {"feed_forward_proj": "relu", "seed": 8, "std": 0.3},
    "v1.1-gated-gelu-untied": {"feed_forward_proj": "gated-gelu", "tie_word_embeddings": False, "seed": 4,
                               "std": 0.3},
    "d_kv-not-d_model-over-heads": {"d_kv": 12, "num_heads": 6, "feed_forward_proj": "gated-silu"},
    "deep-decoder-gelu": {"num_layers": 1, "num_decoder_layers": 3, "feed_forward_proj": "gelu", "seed": 5},
    "deep-encoder-short-distance": {"num_layers": 3, "num_decoder_layers": 1, "relative_attention_num_buckets": 8,
                                    "relative_attention_max_distance": 6, "seed": 3},
}


def save_t5(folder: Path, seed: int = 0, std: float = 0.2, **overrides: Any) -> Path:
    """A random T5ForConditionalGeneration saved as transformers 5 saves it. An untied head must be
    untied by hand: T5Config forces tie_word_embeddings (and writes true) and keeps only the rescale off."""
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(T5Config(**{**BASE, **overrides}))
    if overrides.get("tie_word_embeddings") is False:
        model.lm_head.weight = nn.Parameter(torch.empty_like(model.lm_head.weight))
    randomize(model, std=std, seed=seed).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module", params=list(CONFIGS))
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    folder = save_t5(tmp_path_factory.mktemp(request.param), **CONFIGS[request.param])
    return load_ours(folder), T5ForConditionalGeneration.from_pretrained(folder).eval()


def padded_batch() -> tuple[Tensor, Tensor]:
    """Three 20-slot sources: full, right-padded (as T5 tokenizers pad) and left-padded."""
    ids = token_ids(3, 20, VOCAB, seed=2)
    mask = torch.ones(3, 20, dtype=torch.long)
    mask[1, 13:] = 0
    mask[2, :5] = 0
    return ids, mask


@torch.no_grad()
def test_teacher_forced_forward_with_padded_sources(pair) -> None:
    ours, theirs = pair
    ids, mask = padded_batch()
    target = token_ids(3, 8, VOCAB, seed=3)
    expected = theirs(input_ids=ids, attention_mask=mask, decoder_input_ids=target)
    assert_logits_match(ours(ids, target, key_mask=mask), expected.logits)
    real = mask.bool()
    assert_logits_match(ours.encode(ids, mask)[real], expected.encoder_last_hidden_state[real])
    # the mask matters: without it the padded rows read their padding
    assert (ours(ids, target)[1:] - expected.logits[1:]).abs().max() > 1e-3


@torch.no_grad()
def test_prefill_then_cached_steps_equal_teacher_forcing(pair) -> None:
    ours, theirs = pair
    ids, mask = padded_batch()
    target = token_ids(3, 9, VOCAB, seed=4)
    cross = ours.cross_cache(ours.encode(ids, mask))
    cache = ours.new_cache(batch=3, max_len=9)
    pieces = [ours.decode(target[:, :3], cross, mask, cache)]
    pieces += [ours.decode(target[:, t : t + 1], cross, mask, cache) for t in range(3, 9)]
    assert cache.length == 9
    expected = theirs(input_ids=ids, attention_mask=mask, decoder_input_ids=target).logits
    assert_logits_match(torch.cat(pieces, dim=1), expected)


def test_parts_named_and_tied_as_the_checkpoint(pair) -> None:
    ours, theirs = pair
    assert ours.encoder.embed_tokens.weight is ours.shared.weight is ours.decoder.embed_tokens.weight
    tied = ours.lm_head.weight is ours.shared.weight
    assert tied == (theirs.lm_head.weight is theirs.shared.weight)
    assert ours.config.scale_decoder_outputs == theirs.config.scale_decoder_outputs == tied
    assert {name for name, _ in ours.named_parameters()} == {name for name, _ in theirs.named_parameters()}
    assert ours.config.head_dim == theirs.config.d_kv and ours.config.n_layers == theirs.config.num_decoder_layers


def run(search) -> tuple[list[Sequence], list]:
    steps = []
    while True:
        try:
            steps.append(next(search))
        except StopIteration as done:
            return done.value, steps


def stepper(ours: nn.Module) -> EncoderDecoderStepper:
    return EncoderDecoderStepper(ours, SOURCE, START, NEW)


def generated(theirs: nn.Module, eos: int | None, **options: Any):
    """transformers' tokens after the decoder start, each row cut after its eos.

    The cache is passed in: the one generate() builds from the config has `num_layers` (encoder)
    layers, and a decoder with more blocks than the encoder fails in transformers 5.23 (IndexError).
    """
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    out = theirs.generate(torch.tensor([SOURCE]), max_new_tokens=NEW, do_sample=False, eos_token_id=eos,
                          pad_token_id=0, decoder_start_token_id=START, return_dict_in_generate=True,
                          output_scores=True, past_key_values=cache, **options)
    rows = [row[: row.index(eos) + 1] if eos in row else row for row in out.sequences[:, 1:].tolist()]
    return rows, out


def greedy_eos(theirs: nn.Module) -> tuple[int, int]:
    """The model's own greedy token that first appears latest among steps 2-6 (so greedy stops there,
    mid-way), and one it never makes (for forced eos)."""
    plain = generated(theirs, None)[0][0]
    assert len(set(plain)) >= 3, f"degenerate output {plain}: pick another seed or std"
    step = max(range(2, 7), key=lambda i: plain.index(plain[i]))
    absent = next(token for token in range(2, VOCAB) if token not in plain)
    return plain[step], absent


@pytest.mark.parametrize("forced", [False, True])
def test_greedy_equals_generate(pair, forced: bool) -> None:
    ours, theirs = pair
    eos, absent = greedy_eos(theirs)
    eos = absent if forced else eos
    options = {"forced_eos_token_id": eos} if forced else {}
    expected = generated(theirs, eos, **options)[0][0]
    settings = GenerationSettings(max_new_tokens=NEW, eos_token_ids=(eos,), pad_token_id=0,
                                  forced_eos_token_ids=(eos,) if forced else ())
    sequences, steps = run(token_search(stepper(ours), [START], settings))
    assert list(sequences[0].token_ids) == expected and [s.token_id for s in steps] == expected
    assert sequences[0].finish_reason == "eos" and expected[-1] == eos
    assert (len(expected) == NEW) if forced else (3 <= len(expected) < NEW)  # forced last, or made mid-way


def liked(theirs: nn.Module) -> list[int]:
    """The model's favourite first tokens, best first: the 2nd makes an eos some beams end on early."""
    with torch.no_grad():
        logits = theirs(input_ids=torch.tensor([SOURCE]), decoder_input_ids=torch.tensor([[START]])).logits
    return logits[0, -1].topk(4).indices.tolist()


BEAM_GRID: dict[str, dict[str, Any]] = {
    "lp1-no-early-stop": {"length_penalty": 1.0, "early_stopping": False},
    "lp0.5-early-stop": {"length_penalty": 0.5, "early_stopping": True},
    "forced-eos": {"length_penalty": 1.0, "early_stopping": "never", "forced_eos": True},
}


@pytest.mark.parametrize("name", list(BEAM_GRID))
def test_beam_equals_generate(pair, name: str) -> None:
    ours, theirs = pair
    options = dict(BEAM_GRID[name])
    eos = liked(theirs)[1]
    if options.pop("forced_eos", False):
        options["forced_eos_token_id"] = eos
    expected, out = generated(theirs, eos, num_beams=4, num_return_sequences=3, **options)
    settings = GenerationSettings(
        strategy="beam", max_new_tokens=NEW, num_beams=4, num_return_sequences=3, eos_token_ids=(eos,),
        pad_token_id=0, length_penalty=options["length_penalty"], early_stopping=options["early_stopping"],
        forced_eos_token_ids=(eos,) if "forced_eos_token_id" in options else ())
    sequences, steps = run(beam_search(stepper(ours), [START], settings))
    assert [list(s.token_ids) for s in sequences] == expected
    assert [s.score for s in sequences] == pytest.approx(out.sequences_scores.tolist(), abs=SCORE_TOL)
    assert len(steps) == len(out.scores)
    # hypotheses really end on eos before the last step, so the finished set is exercised
    assert any(h.status == "finished" for step in steps[:-1] for h in step.hypotheses)
    assert all(isinstance(step, BeamStep) for step in steps)


def test_cross_attention_keys_and_values_are_computed_once(pair) -> None:
    ours, _ = pair
    calls = []
    hooks = [getattr(block.layer[1].EncDecAttention, name).register_forward_hook(lambda *_: calls.append(1))
             for block in ours.decoder.block for name in ("k", "v")]
    try:
        sequences, steps = run(token_search(stepper(ours), [START], GenerationSettings(max_new_tokens=NEW)))
    finally:
        for hook in hooks:
            hook.remove()
    assert len(steps) == NEW and len(calls) == 2 * len(ours.decoder.block)


@torch.no_grad()
def test_bfloat16_equals_transformers_bfloat16(tmp_path: Path) -> None:
    """Position bias and masks stay in the model's dtype, as transformers keeps them. (gelu_new would
    differ: transformers rounds each op of its tanh formula in bfloat16, F.gelu rounds once.)"""
    folder = save_t5(tmp_path / "bf16", **CONFIGS["d_kv-not-d_model-over-heads"])
    ours = load_model(open_checkpoint(folder), torch.bfloat16, torch.device("cpu"))
    theirs = T5ForConditionalGeneration.from_pretrained(folder, dtype=torch.bfloat16).eval()
    ids, mask = padded_batch()
    target = token_ids(3, 8, VOCAB, seed=3)
    got = ours(ids, target, key_mask=mask)
    assert got.dtype == torch.bfloat16
    expected = theirs(input_ids=ids, attention_mask=mask, decoder_input_ids=target).logits
    assert_logits_match(got.float(), expected.float(), tol=2e-2)


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize(("buckets", "distance"), [(32, 128), (16, 12), (8, 6), (6, 20)])
def test_relative_position_buckets_equal_transformers(bidirectional: bool, buckets: int, distance: int) -> None:
    relative = torch.arange(-300, 300)[None, :]
    expected = T5Attention._relative_position_bucket(relative, bidirectional, buckets, distance)
    assert torch.equal(relative_position_bucket(relative, bidirectional, buckets, distance), expected)


@pytest.mark.parametrize("fields", [
    {},
    {"feed_forward_proj": "gated-gelu"},
    {"feed_forward_proj": "gated-silu", "num_layers": 3},
    {"feed_forward_proj": "gelu_new", "num_decoder_layers": 2},
    {"feed_forward_proj": "gated-gelu", "dense_act_fn": "relu", "is_gated_act": False},  # saved values win
    {"tie_word_embeddings": False},
    {"tie_word_embeddings": True, "scale_decoder_outputs": False},  # as transformers 5 saves an untied v1.1
])
def test_config_reads_fields_as_t5config_does(fields: dict[str, Any]) -> None:
    ours, theirs = Config.from_hf({"model_type": "t5", **fields}), T5Config.from_dict(fields)
    assert (ours.activation, ours.gated) == (theirs.dense_act_fn, theirs.is_gated_act)
    assert (ours.n_encoder_layers, ours.n_layers) == (theirs.num_layers, theirs.num_decoder_layers)
    assert ours.scale_decoder_outputs == theirs.scale_decoder_outputs
    assert (ours.hidden_size, ours.head_dim, ours.n_heads, ours.vocab_size) == (512, 64, 8, 32128)
    assert ours.context_length == 512


@pytest.mark.parametrize(("proj", "message"), [
    ("relu-gated", "not ACT or gated-ACT"), ("gated-gelu-new", "not ACT or gated-ACT"),
    ("gated-mish", "unsupported activation 'mish'"),
])
def test_bad_feed_forward_proj_is_a_clear_error(proj: str, message: str) -> None:
    with pytest.raises(LmtuiError, match=message):
        Config.from_hf({"model_type": "t5", "feed_forward_proj": proj})


EMBEDDING_COPIES = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")
STALE = "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight"  # old saves; never used
# how checkpoints in the wild store the embedding and head: (tensors kept, config.json changes)
LAYOUTS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "transformers-4-tied-with-copies": (("shared.weight", *EMBEDDING_COPIES),
                                        {"tie_word_embeddings": None, "scale_decoder_outputs": None}),
    "hub-v1.1-untied-with-copies": (("shared.weight", *EMBEDDING_COPIES, "lm_head.weight"),
                                    {"tie_word_embeddings": False, "scale_decoder_outputs": None}),
    "madlad-no-shared": ((*EMBEDDING_COPIES, "lm_head.weight"),
                         {"tie_word_embeddings": False, "scale_decoder_outputs": None}),
    "decoder-copy-only": (("decoder.embed_tokens.weight",), {}),
    "stale-cross-position-table": (("shared.weight", STALE), {}),
}


@pytest.fixture(scope="module")
def base_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, Path]:
    return {untied: save_t5(tmp_path_factory.mktemp(f"base-{untied}"), seed=1, tie_word_embeddings=not untied,
                            feed_forward_proj="gated-gelu" if untied else "relu") for untied in (False, True)}


def rewrite(base: Path, folder: Path, keep: tuple[str, ...], changes: dict[str, Any]) -> Path:
    """The base checkpoint with the embedding stored under the names in `keep` (and the head, the
    stale cross-attention table, when listed)."""
    tensors = load_file(base / "model.safetensors")
    stored = {"shared.weight": tensors.pop("shared.weight"), "lm_head.weight": tensors.pop("lm_head.weight", None),
              STALE: torch.randn(16, 4)}
    tensors |= {name: stored.get(name, stored["shared.weight"]).clone() for name in keep}
    folder.mkdir()
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((base / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps({k: v for k, v in config.items() if v is not None}))
    return folder


@pytest.mark.parametrize("name", list(LAYOUTS))
@torch.no_grad()
def test_checkpoint_layouts_load_as_transformers_loads_them(name: str, base_folders, tmp_path: Path) -> None:
    keep, changes = LAYOUTS[name]
    folder = rewrite(base_folders["lm_head.weight" in keep], tmp_path / name, keep, changes)
    ours, theirs = load_ours(folder), T5ForConditionalGeneration.from_pretrained(folder).eval()
    ids, target = token_ids(2, 12, VOCAB, seed=6), token_ids(2, 5, VOCAB, seed=7)
    assert_logits_match(ours(ids, target), theirs(input_ids=ids, decoder_input_ids=target).logits)
    assert (ours.lm_head.weight is ours.shared.weight) == ("lm_head.weight" not in keep)


def test_missing_tensor_is_named(base_folders, tmp_path: Path) -> None:
    tensors = load_file(base_folders[False] / "model.safetensors")
    del tensors["decoder.block.1.layer.2.DenseReluDense.wo.weight"], tensors["shared.weight"]
    folder = tmp_path / "broken"
    folder.mkdir()
    save_file(tensors, folder / "model.safetensors")
    (folder / "config.json").write_text((base_folders[False] / "config.json").read_text())
    with pytest.raises(LmtuiError, match=r"missing decoder\.block\.1\.layer\.2\.DenseReluDense\.wo\.weight, shared"):
        load_ours(folder)
