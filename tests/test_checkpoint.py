"""Checkpoint resolution and loading: sharded folders load, and every broken input is one clear error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import GPT2LMHeadModel

from lmtui.checkpoint import open_checkpoint
from lmtui.errors import LmtuiError
from lmtui.models.loading import load_model


def load(model: str | Path) -> torch.nn.Module:
    return load_model(open_checkpoint(model), None, torch.device("cpu"))


@pytest.fixture
def folder(tmp_path: Path, gpt2_folder: Path) -> Path:
    copy = tmp_path / "model"
    shutil.copytree(gpt2_folder, copy)
    return copy


def rewrite_tensors(folder: Path, change) -> None:
    state = load_file(folder / "model.safetensors")
    change(state)
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})


def test_sharded_checkpoint_loads_and_matches(tmp_path: Path, gpt2_folder: Path) -> None:
    theirs = GPT2LMHeadModel.from_pretrained(gpt2_folder).eval()
    theirs.save_pretrained(tmp_path, max_shard_size="40KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    assert len(list(tmp_path.glob("model-*-of-*.safetensors"))) > 1
    ids = torch.arange(10)[None]
    with torch.no_grad():
        torch.testing.assert_close(load(tmp_path)(ids), theirs(ids).logits, atol=1e-4, rtol=0)


def test_safetensors_file_path_means_its_folder(folder: Path) -> None:
    assert open_checkpoint(folder / "model.safetensors").folder == folder


def test_missing_tensor_is_named(folder: Path) -> None:
    rewrite_tensors(folder, lambda state: state.pop("transformer.h.1.mlp.c_fc.bias"))
    with pytest.raises(LmtuiError, match=r"missing transformer\.h\.1\.mlp\.c_fc\.bias"):
        load(folder)


def test_unexpected_tensor_is_named(folder: Path) -> None:
    rewrite_tensors(folder, lambda state: state.update({"transformer.h.0.extra.weight": torch.zeros(3)}))
    with pytest.raises(LmtuiError, match=r"unexpected transformer\.h\.0\.extra\.weight"):
        load(folder)


def test_wrong_shape_names_tensor_and_both_shapes(folder: Path) -> None:
    rewrite_tensors(folder, lambda state: state.update({"transformer.ln_f.weight": torch.ones(31)}))
    with pytest.raises(LmtuiError, match=r"transformer\.ln_f\.weight \[31\] \(config needs \[32\]\)"):
        load(folder)


def test_all_problems_in_one_message(folder: Path) -> None:
    def break_three(state: dict) -> None:
        state.pop("transformer.wpe.weight")
        state["bogus"] = torch.zeros(1)
        state["transformer.ln_f.bias"] = torch.zeros(7)

    rewrite_tensors(folder, break_three)
    with pytest.raises(LmtuiError) as error:
        load(folder)
    message = str(error.value)
    assert "missing transformer.wpe.weight" in message
    assert "unexpected bogus" in message
    assert "transformer.ln_f.bias [7]" in message
    assert "\n" not in message


def test_missing_config(folder: Path) -> None:
    (folder / "config.json").unlink()
    with pytest.raises(LmtuiError, match="has no config.json"):
        open_checkpoint(folder)


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_invalid_config(folder: Path, text: str) -> None:
    (folder / "config.json").write_text(text)
    with pytest.raises(LmtuiError, match="config.json"):
        open_checkpoint(folder)


@pytest.mark.parametrize(
    ("field", "value"), [("n_layer", -1), ("n_layer", 10**12), ("n_embd", "wide"), ("layer_norm_epsilon", "x")]
)
def test_hostile_config_values_are_refused_before_building(folder: Path, field: str, value: object) -> None:
    config = json.loads((folder / "config.json").read_text())
    config[field] = value
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(LmtuiError, match=field):
        load(folder)


def test_unknown_model_type_lists_supported(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "mamba"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(LmtuiError, match=r"unsupported model_type 'mamba' \(supported: .*gpt2"):
        load(folder)


@pytest.mark.parametrize("keep", [0.5, 0.01])
def test_truncated_safetensors(folder: Path, keep: float) -> None:
    path = folder / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(LmtuiError, match="model.safetensors is not a readable safetensors file"):
        open_checkpoint(folder)


def test_pickle_only_folder_is_refused(folder: Path) -> None:
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    refusal = r"pytorch_model\.bin is a pickle file, which can run arbitrary code.*save_pretrained"
    with pytest.raises(LmtuiError, match=refusal):
        open_checkpoint(folder)


def test_pickle_file_path_is_refused(folder: Path) -> None:
    (folder / "weights.pt").write_bytes(b"\x80\x04not really")
    with pytest.raises(LmtuiError, match="weights.pt is a pickle file"):
        open_checkpoint(folder / "weights.pt")


def test_shard_named_in_index_but_absent(tmp_path: Path, gpt2_folder: Path) -> None:
    GPT2LMHeadModel.from_pretrained(gpt2_folder).save_pretrained(tmp_path, max_shard_size="40KB")
    shards = sorted(tmp_path.glob("model-*-of-*.safetensors"))
    shards[-1].unlink()
    with pytest.raises(LmtuiError, match=f"names shards that are not in .*{shards[-1].name}"):
        open_checkpoint(tmp_path)


def test_folder_without_weights(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(LmtuiError, match="has no model.safetensors"):
        open_checkpoint(tmp_path)


def test_hub_id_not_in_cache() -> None:
    with pytest.raises(LmtuiError, match="not in the Hugging Face cache"):
        open_checkpoint("nobody/no-such-model-xyz")


def test_nonexistent_path_that_is_not_a_hub_id(tmp_path: Path) -> None:
    with pytest.raises(LmtuiError, match="no such file or folder"):
        open_checkpoint(str(tmp_path / "nope" / "..." / "x"))
