"""The command-line contract: exit codes, one-line errors, `--json` objects with DESIGN.md's keys."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from transformers import GPT2LMHeadModel

from lmtui import __version__
from lmtui.cli import main

INFO_KEYS = {"family", "model_type", "parameters", "layers", "heads", "kv_heads", "hidden_size", "vocab_size",
             "context_length", "dtype", "device", "attention_backend", "tokenizer", "file_size"}


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_version() -> None:
    code, out, _ = run("--version")
    assert code == 0 and out.strip() == f"lmtui, version {__version__}"


def test_help_lists_info() -> None:
    code, out, _ = run("--help")
    assert code == 0 and "info" in out


def test_info_json(gpt2_folder: Path) -> None:
    code, out, _ = run("info", "-m", str(gpt2_folder), "--json", "--device", "cpu")
    assert code == 0
    info = json.loads(out)
    assert INFO_KEYS <= info.keys()
    expected = {"family": "gpt2", "model_type": "gpt2", "kind": "decoder", "encoder_layers": None,
                "layers": 2, "heads": 4, "kv_heads": 4,
                "hidden_size": 32, "vocab_size": 320, "context_length": 64, "dtype": "float32",
                "device": "cpu", "tokenizer": "byte-level BPE"}
    assert {key: info[key] for key in expected} == expected
    reference = GPT2LMHeadModel.from_pretrained(gpt2_folder)
    assert info["parameters"] == sum(p.numel() for p in reference.parameters())  # tied weights once
    assert info["file_size"] == (gpt2_folder / "model.safetensors").stat().st_size


def test_info_dtype_option(gpt2_folder: Path) -> None:
    code, out, _ = run("info", "-m", str(gpt2_folder), "--json", "--dtype", "bfloat16")
    assert code == 0 and json.loads(out)["dtype"] == "bfloat16"


def test_info_text(gpt2_folder: Path) -> None:
    code, out, _ = run("info", "-m", str(gpt2_folder))
    assert code == 0
    assert "gpt2 (gpt2, decoder)" in out and "4 query, 4 key/value" in out and "byte-level BPE" in out


def test_bad_model_is_one_line_exit_1(tmp_path: Path) -> None:
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    code, out, err = run("info", "-m", str(tmp_path), "--json")
    assert code == 1 and out == ""
    assert err.startswith("Error: pytorch_model.bin is a pickle file") and err.count("\n") == 1


def test_bad_option_is_usage_error(gpt2_folder: Path) -> None:
    code, _, err = run("info", "-m", str(gpt2_folder), "--device", "tpu")
    assert code == 2 and "Invalid value for '--device'" in err


def test_cuda_without_cuda_is_clear(gpt2_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = run("info", "-m", str(gpt2_folder), "--device", "cuda")
    assert code == 1 and "no CUDA device is available" in err


def test_hub_id_from_local_cache(tmp_path: Path, gpt2_folder: Path) -> None:
    """`-m org/name` finds the snapshot in HF_HOME's hub cache, offline, in a fresh process."""
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--tiny--gpt2-test"
    shutil.copytree(gpt2_folder, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    env = {**os.environ, "HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    done = subprocess.run([sys.executable, "-m", "lmtui", "info", "-m", "tiny/gpt2-test", "--json"],
                          capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["path"] == str(repo / "snapshots" / revision) and info["family"] == "gpt2"


def test_info_json_for_a_grouped_query_llama_family_model(tmp_path: Path) -> None:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from conftest import write_bpe_tokenizer

    config = Qwen2Config(vocab_size=320, hidden_size=48, intermediate_size=96, num_hidden_layers=3,
                         num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=True)
    model = Qwen2ForCausalLM(config)
    model.save_pretrained(tmp_path)
    write_bpe_tokenizer(tmp_path)
    code, out, _ = run("info", "-m", str(tmp_path / "model.safetensors"), "--json")
    assert code == 0
    info = json.loads(out)
    expected = {"family": "llama", "model_type": "qwen2", "layers": 3, "heads": 6, "kv_heads": 2,
                "hidden_size": 48, "vocab_size": 320, "context_length": 256,
                "parameters": sum(p.numel() for p in model.parameters())}
    assert {key: info[key] for key in expected} == expected


def test_no_model_and_no_bundled_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import lmtui.checkpoint

    monkeypatch.setattr(lmtui.checkpoint, "DEFAULT_MODEL", tmp_path / "tiny-gpt")
    for command in ("info", "tokenize"):
        code, _, err = run(command, *(["x"] if command == "tokenize" else []))
        assert code == 1 and "no --model given and the bundled model" in err
