"""BERT, RoBERTa and DistilBERT against transformers on random checkpoints saved with save_pretrained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertForPreTraining,
    BertModel,
    DistilBertConfig,
    DistilBertForMaskedLM,
    DistilBertModel,
    RobertaConfig,
    RobertaForMaskedLM,
)

from helpers_models import assert_logits_match, load_ours, randomize, token_ids
from lmtui.errors import LmtuiError

VOCAB = 90
SMALL = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
             max_position_embeddings=40)
DISTIL = dict(vocab_size=VOCAB, dim=32, n_layers=2, n_heads=4, hidden_dim=48, max_position_embeddings=40)

CASES = {
    "bert-gelu": (BertForMaskedLM, BertConfig(**SMALL)),
    "bert-relu-3types-untied": (BertForMaskedLM, BertConfig(**SMALL, hidden_act="relu", type_vocab_size=3,
                                                            tie_word_embeddings=False)),
    "bert-gelu_new-eps": (BertForMaskedLM, BertConfig(**SMALL, hidden_act="gelu_new", layer_norm_eps=1e-5)),
    "bert-pretraining": (BertForPreTraining, BertConfig(**SMALL, hidden_act="silu")),
    "roberta-gelu": (RobertaForMaskedLM, RobertaConfig(**{**SMALL, "max_position_embeddings": 42})),
    "roberta-relu-untied": (RobertaForMaskedLM, RobertaConfig(**{**SMALL, "max_position_embeddings": 42},
                                                              hidden_act="relu", type_vocab_size=1,
                                                              tie_word_embeddings=False)),
    "distilbert-gelu": (DistilBertForMaskedLM, DistilBertConfig(**DISTIL)),
    "distilbert-relu-untied": (DistilBertForMaskedLM, DistilBertConfig(**DISTIL, activation="relu",
                                                                       tie_word_embeddings=False)),
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[nn.Module, Path]]:
    """Each case's random transformers model and the folder it was saved to."""
    out = {}
    for seed, (name, (model_class, config)) in enumerate(CASES.items()):
        torch.manual_seed(seed)
        model = randomize(model_class(config), seed=seed)
        folder = tmp_path_factory.mktemp(name)
        model.save_pretrained(folder)
        out[name] = (model, folder)
    return out


def their_logits(model: nn.Module, ids: Tensor, mask: Tensor | None = None, types: Tensor | None = None) -> Tensor:
    extra = {} if types is None else {"token_type_ids": types}
    with torch.no_grad():
        output = model(ids, attention_mask=mask, **extra)
    return output.prediction_logits if isinstance(model, BertForPreTraining) else output.logits


def segments(ids: Tensor, n_types: int) -> Tensor | None:
    """Token type ids that change halfway along each row, through every type the model has."""
    if n_types < 2:
        return None
    return (torch.arange(ids.shape[1]) * n_types // ids.shape[1]).expand_as(ids).contiguous()


def padded_batch(lengths: list[int], pad: int, seed: int) -> tuple[Tensor, Tensor]:
    """Right-padded rows of random ids (never `pad` in the real part) and their key mask."""
    ids = token_ids(len(lengths), max(lengths), VOCAB - 3, seed=seed) + 3
    mask = torch.zeros_like(ids)
    for row, length in enumerate(lengths):
        mask[row, :length] = 1
    return ids.masked_fill(mask == 0, pad), mask


@pytest.mark.parametrize("name", list(CASES))
def test_logits_match_transformers(saved: dict[str, tuple[nn.Module, Path]], name: str) -> None:
    theirs, folder = saved[name]
    ours = load_ours(folder)
    assert ours.has_mlm_head
    ids = token_ids(2, 17, VOCAB, seed=3)
    types = segments(ids, getattr(theirs.config, "type_vocab_size", 0))
    with torch.no_grad():
        assert_logits_match(ours(ids, token_type_ids=types), their_logits(theirs, ids, types=types))
    unused = {"cls.seq_relationship.weight", "cls.seq_relationship.bias"}  # the next-sentence head
    parameters = sum(p.numel() for name, p in theirs.named_parameters() if name not in unused)
    assert sum(p.numel() for p in ours.parameters()) == parameters  # tied weights counted once, in both


@pytest.mark.parametrize("name", ["bert-relu-3types-untied", "roberta-relu-untied", "distilbert-gelu"])
def test_padded_batch_matches_transformers_and_unpadded_rows(
    saved: dict[str, tuple[nn.Module, Path]], name: str
) -> None:
    theirs, folder = saved[name]
    ours = load_ours(folder)
    lengths = [13, 8, 3]
    ids, mask = padded_batch(lengths, theirs.config.pad_token_id, seed=5)
    types = segments(ids, getattr(theirs.config, "type_vocab_size", 0))
    with torch.no_grad():
        logits = ours(ids, mask, types)
        real = mask.bool()
        assert_logits_match(logits[real], their_logits(theirs, ids, mask, types)[real])
        for row, length in enumerate(lengths):
            row_types = None if types is None else types[row : row + 1, :length]
            alone = ours(ids[row : row + 1, :length], token_type_ids=row_types)[0]
            assert_logits_match(logits[row, :length], alone)


def test_roberta_positions_count_from_the_padding_id(saved: dict[str, tuple[nn.Module, Path]]) -> None:
    from lmtui.models.roberta import position_ids

    ids = torch.tensor([[0, 5, 6, 2, 1, 1], [0, 7, 2, 1, 1, 1]])
    assert position_ids(ids, pad=1).tolist() == [[2, 3, 4, 5, 1, 1], [2, 3, 4, 1, 1, 1]]
    ours = load_ours(saved["roberta-gelu"][1])
    assert ours.config.context_length == 42 - 1 - 1  # two of the 42 position rows are never a token's


def test_bert_model_without_head_loads_for_inspection(tmp_path: Path) -> None:
    torch.manual_seed(0)
    theirs = randomize(BertModel(BertConfig(**SMALL, type_vocab_size=3)), seed=7)
    theirs.save_pretrained(tmp_path)
    assert not any(name.startswith("bert.") for name in load_file(tmp_path / "model.safetensors"))
    ours = load_ours(tmp_path)
    assert not ours.has_mlm_head and ours.bert.pooler is not None
    ids, mask = padded_batch([11, 6], pad=0, seed=2)
    types = segments(ids, 3)
    with torch.no_grad():
        expected = theirs(ids, attention_mask=mask, token_type_ids=types)
        hidden = ours.encode(ids, mask, types)
    real = mask.bool()
    assert_logits_match(hidden[real], expected.last_hidden_state[real])
    assert_logits_match(ours.bert.pool(hidden), expected.pooler_output)
    with pytest.raises(LmtuiError, match=r"no masked-language-model head \(cls\.predictions\.\*"):
        ours(ids)


def test_bert_model_with_prefix_and_no_pooler(tmp_path: Path) -> None:
    torch.manual_seed(0)
    theirs = randomize(BertModel(BertConfig(**SMALL), add_pooling_layer=False), seed=8)
    theirs.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    save_file({"bert." + name: t for name, t in load_file(weights).items()}, weights, metadata={"format": "pt"})
    ours = load_ours(tmp_path)
    assert not ours.has_mlm_head and ours.bert.pooler is None
    ids = token_ids(1, 9, VOCAB)
    with torch.no_grad():
        assert_logits_match(ours.encode(ids), theirs(ids).last_hidden_state)
    with pytest.raises(LmtuiError, match="no pooler"):
        ours.bert.pool(ours.encode(ids))


def test_distilbert_model_without_head(tmp_path: Path) -> None:
    torch.manual_seed(0)
    theirs = randomize(DistilBertModel(DistilBertConfig(**DISTIL)), seed=9)
    theirs.save_pretrained(tmp_path)
    ours = load_ours(tmp_path)
    ids, mask = padded_batch([10, 4], pad=0, seed=4)
    with torch.no_grad():
        real = mask.bool()
        assert_logits_match(ours.encode(ids, mask)[real], theirs(ids, attention_mask=mask).last_hidden_state[real])
    with pytest.raises(LmtuiError, match="DistilBert checkpoint has no masked-language-model head"):
        ours(ids)


def test_legacy_gamma_beta_names_and_old_buffers_load(
    saved: dict[str, tuple[nn.Module, Path]], tmp_path: Path
) -> None:
    """Like bert-base-uncased: TF-era LayerNorm.gamma/beta, a saved position_ids buffer, the NSP head."""
    theirs, folder = saved["bert-pretraining"]
    tensors = {name.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): t
               for name, t in load_file(folder / "model.safetensors").items()}
    assert "cls.seq_relationship.weight" in tensors and "bert.encoder.layer.0.output.LayerNorm.gamma" in tensors
    tensors["bert.embeddings.position_ids"] = torch.arange(40)[None]
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    (tmp_path / "config.json").write_text((folder / "config.json").read_text())
    ours = load_ours(tmp_path)
    assert ours.has_mlm_head and ours.bert.pooler is not None
    ids = token_ids(1, 12, VOCAB, seed=6)
    with torch.no_grad():
        assert_logits_match(ours(ids), their_logits(theirs, ids))


def test_missing_and_unexpected_tensors_are_named(saved: dict[str, tuple[nn.Module, Path]], tmp_path: Path) -> None:
    folder = saved["roberta-gelu"][1]
    tensors = load_file(folder / "model.safetensors")
    del tensors["lm_head.dense.weight"]
    tensors["classifier.out_proj.weight"] = torch.zeros(2, 32)
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    (tmp_path / "config.json").write_text((folder / "config.json").read_text())
    with pytest.raises(LmtuiError, match=r"missing lm_head\.dense\.weight; unexpected classifier\.out_proj\.weight"):
        load_ours(tmp_path)


def test_decoder_configs_are_refused(saved: dict[str, tuple[nn.Module, Path]], tmp_path: Path) -> None:
    folder = saved["bert-gelu"][1]
    config = json.loads((folder / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "is_decoder": True}))
    (tmp_path / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    with pytest.raises(LmtuiError, match="is_decoder / add_cross_attention make this a causal decoder"):
        load_ours(tmp_path)
