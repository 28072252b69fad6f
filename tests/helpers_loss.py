"""Random transformers checkpoints of every kind the loss scores, with the tokenizers they are read with.

Each builder saves a folder (config.json + model.safetensors + tokenizer files) and returns the
transformers model it saved, so tests can compare with transformers' own logits.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from conftest import CORPUS, roberta_tokenizer, write_bpe_tokenizer
from helpers_models import randomize

SIZES = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48)
SEQ2SEQ = dict(d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
               encoder_ffn_dim=48, decoder_ffn_dim=48, max_position_embeddings=64)


def save_llama(folder: Path) -> nn.Module:
    """A Llama with the byte-level BPE tokenizer; 320 output ids for a 300-token vocabulary (padded rows)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=320, max_position_embeddings=64, num_key_value_heads=2, bos_token_id=0,
                         eos_token_id=0, **SIZES)
    model = randomize(LlamaForCausalLM(config), seed=3)
    model.save_pretrained(folder)
    write_bpe_tokenizer(folder, vocab_size=300)
    return model


def save_bert(folder: Path, head: bool = True) -> nn.Module:
    """BertForMaskedLM (or a bare BertModel) with a WordPiece vocabulary trained on the corpus."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertConfig, BertForMaskedLM, BertModel, BertTokenizer

    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    backend.train_from_iterator([CORPUS], trainers.WordPieceTrainer(vocab_size=200, special_tokens=specials,
                                                                     show_progress=False))
    tokenizer = BertTokenizer(vocab=backend.get_vocab())
    config = BertConfig(vocab_size=len(tokenizer), **SIZES)
    torch.manual_seed(0)
    model = randomize(BertForMaskedLM(config) if head else BertModel(config), std=0.5)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model


def save_bart(folder: Path) -> nn.Module:
    from transformers import BartConfig, BartForConditionalGeneration

    tokenizer = roberta_tokenizer()
    config = BartConfig(vocab_size=len(tokenizer), pad_token_id=1, bos_token_id=0, eos_token_id=2,
                        decoder_start_token_id=2, forced_eos_token_id=2, **SEQ2SEQ)
    model = randomize(BartForConditionalGeneration(config), std=0.2, seed=0)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # post-LN shifts centred on 0, or greedy search repeats one token forever
        for name, parameter in model.named_parameters():
            if "norm" in name and name.endswith(".bias"):
                parameter.normal_(0.0, 0.1, generator=generator)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model


def save_t5(folder: Path) -> nn.Module:
    """A T5 v1.0 shape with a fixed Unigram vocabulary: corpus words, then characters (<pad>, </s>, <unk> first)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

    words = sorted({"\u2581" + word for word in CORPUS.split()})[:100]
    chars = sorted(set(CORPUS.replace(" ", "")) | {"\u2581"})
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [(w, -2.0) for w in words] + [(c, -8.0) for c in chars]
    backend = Tokenizer(models.Unigram(vocab, unk_id=2))
    backend.pre_tokenizer, backend.decoder = pre_tokenizers.Metaspace(), decoders.Metaspace()
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>", pad_token="<pad>",
                            unk_token="<unk>").save_pretrained(folder)
    config = T5Config(vocab_size=160, d_model=32, d_ff=64, num_layers=2, num_heads=4, d_kv=8,
                      feed_forward_proj="relu", decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    model = randomize(T5ForConditionalGeneration(config), std=0.3, seed=8)
    model.save_pretrained(folder)
    return model


def save_marian(folder: Path, files: Path) -> nn.Module:
    """English → German with separate spm models and separate vocabularies (decoder_vocab_size), so a
    target's ids come from target.spm and target_vocab.json."""
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    from test_marian_tokenizer import ENGLISH, GERMAN, _save, _train, _vocab

    english, german = _train(files, "en", ENGLISH), _train(files, "de", GERMAN)
    source, target = _vocab(english), _vocab(german)
    _save(folder, english, german, source, target)
    pad = MarianTokenizer.from_pretrained(folder).pad_token_id
    config = MarianConfig(vocab_size=len(source), decoder_vocab_size=len(target), tie_word_embeddings=False,
                          share_encoder_decoder_embeddings=False, pad_token_id=pad, eos_token_id=0,
                          decoder_start_token_id=target["<pad>"], **SEQ2SEQ)
    randomize(MarianMTModel(config), std=0.2, seed=1).save_pretrained(folder)
    return MarianMTModel.from_pretrained(folder).eval()  # reloaded: sinusoid tables are not saved
