"""Checkpoints the tests build themselves: random-initialised transformers models saved with
`save_pretrained`, plus a small byte-level BPE tokenizer trained on a paragraph of English."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from helpers_models import randomize

CORPUS = (
    "The quick brown fox jumps over the lazy dog. A language model reads a prompt one token at a time, "
    "and attention lets every position look back at the ones before it. Heads specialise: some attend "
    "to the previous token, some to the first, some to matching words. Layer norms keep activations "
    "in range, and residual connections carry the signal through deep stacks of blocks. "
) * 4


def write_bpe_tokenizer(folder: Path, vocab_size: int = 300) -> None:
    """A GPT-2-style byte-level BPE tokenizer.json with an <|endoftext|> token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([CORPUS], trainer)
    tokenizer.save(str(folder / "tokenizer.json"))
    config = {"tokenizer_class": "GPT2Tokenizer", "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
              "unk_token": "<|endoftext|>", "model_max_length": 1024}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))


def roberta_tokenizer() -> Any:
    """A RoBERTa/BART-style byte-level BPE tokenizer: <s>=0, <pad>=1, </s>=2, <unk>=3, <mask>=4."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import RobertaTokenizer

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    backend.train_from_iterator([CORPUS], trainer)
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
              for m in json.loads(backend.to_str())["model"]["merges"]]
    return RobertaTokenizer(vocab=backend.get_vocab(), merges=merges)


def save_gpt2(folder: Path, vocab_size: int = 320, seed: int = 0, **overrides: object) -> Path:
    """A random GPT2LMHeadModel (weights large enough that mistakes show) with a tokenizer."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    settings = dict(vocab_size=vocab_size, n_positions=64, n_embd=32, n_layer=2, n_head=4,
                    bos_token_id=0, eos_token_id=0)
    config = GPT2Config(**{**settings, **overrides})
    randomize(GPT2LMHeadModel(config), seed=seed).save_pretrained(folder)
    write_bpe_tokenizer(folder, vocab_size=min(vocab_size, 300))
    return folder


@pytest.fixture(scope="session")
def gpt2_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_gpt2(tmp_path_factory.mktemp("gpt2"))
