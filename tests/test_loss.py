"""Teacher-forced loss against F.cross_entropy on transformers' logits, for every kind of model, and `lmtui loss`.

Decoders are scored from their prefixes, encoder-decoders on the target given the source, encoders by the
pseudo-log-likelihood (transformers' logits with each token masked in turn).
"""

from __future__ import annotations

import json
import math
import random
import re
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from torch import Tensor, nn
from transformers import AutoTokenizer, GPT2LMHeadModel, MarianTokenizer

from helpers_loss import save_bart, save_bert, save_llama, save_marian, save_t5
from lmtui.cli import main
from lmtui.errors import InvalidOption, LmtuiError
from lmtui.inspect.inputs import TokenInputs
from lmtui.loss import LossResult, TokenLoss, score_tokens
from lmtui.session import Session
from lmtui.tokenizer import load_tokenizer
from test_marian_tokenizer import ENGLISH, GERMAN, GERMAN_TEXTS, _save, _train, _vocab
from test_marian_tokenizer import TEXTS as MARIAN_TEXTS

pytestmark = pytest.mark.filterwarnings("ignore:Recommended. pip install sacremoses")  # MarianTokenizer's nag

TOL = 1e-4
EPSILONS = [0.0, 0.1, 0.3]
TEXT = "The quick brown fox jumps over the lazy dog."
TARGETS = {"bart": "A language model reads a prompt.", "t5": "Heads specialise: some attend to the first.",
           "marian": "Der schnelle Fuchs springt über den faulen Hund."}
FAMILIES = ["gpt2", "llama", "bert", "bart", "t5", "marian"]


@dataclass
class Case:
    folder: Path
    reference: nn.Module  # the transformers model saved in the folder
    session: Session


@pytest.fixture(scope="module")
def cases(gpt2_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    root = tmp_path_factory.mktemp("loss")
    (root / "spm").mkdir()
    references = {
        "gpt2": (gpt2_folder, GPT2LMHeadModel.from_pretrained(gpt2_folder).eval()),
        "llama": (root / "llama", save_llama(root / "llama")),
        "bert": (root / "bert", save_bert(root / "bert")),
        "bert-bare": (root / "bert-bare", save_bert(root / "bert-bare", head=False)),
        "bart": (root / "bart", save_bart(root / "bart")),
        "t5": (root / "t5", save_t5(root / "t5")),
        "marian": (root / "marian", save_marian(root / "marian", root / "spm")),
    }
    return {name: Case(folder, model.eval(), Session(folder, device="cpu")) for name, (folder, model) in
            references.items()}


def reference_rows(case: Case, name: str) -> tuple[Tensor, list[int], list[int]]:
    """transformers' logits for every scored token (N, V), the true ids and their positions."""
    tokenizer = AutoTokenizer.from_pretrained(case.folder)
    ids = case.session.inputs(TEXT).ids
    with torch.no_grad():
        if name in TARGETS:  # the target as transformers encodes it, read after the start token
            source, target = tokenizer(TEXT)["input_ids"], tokenizer(text_target=TARGETS[name])["input_ids"]
            assert (list(ids), list(case.session.inputs(TEXT, TARGETS[name]).target_ids)) == (source, target)
            start = case.reference.config.decoder_start_token_id
            logits = case.reference(input_ids=torch.tensor([source]),
                                    decoder_input_ids=torch.tensor([[start, *target[:-1]]])).logits[0]
            return logits, target, list(range(len(target)))
        if name == "bert":  # each token masked in turn, [CLS] and [SEP] left alone
            special = tokenizer(TEXT, return_special_tokens_mask=True)["special_tokens_mask"]
            positions = [i for i, s in enumerate(special) if not s]
            rows = []
            for p in positions:
                masked = list(ids)
                masked[p] = tokenizer.mask_token_id
                rows.append(case.reference(torch.tensor([masked])).logits[0, p])
            return torch.stack(rows), [ids[p] for p in positions], positions
        logits = case.reference(torch.tensor([ids])).logits[0, :-1]
        return logits, list(ids[1:]), list(range(1, len(ids)))


def loss(case: Case, name: str, eps: float) -> LossResult:
    return case.session.loss(TEXT, TARGETS.get(name), label_smoothing=eps)


@pytest.mark.parametrize("eps", EPSILONS)
@pytest.mark.parametrize("name", FAMILIES)
def test_loss_equals_cross_entropy_on_transformers_logits(cases: dict[str, Case], name: str, eps: float) -> None:
    case = cases[name]
    result = loss(case, name, eps)
    logits, labels, positions = reference_rows(case, name)
    expected = F.cross_entropy(logits, torch.tensor(labels), label_smoothing=eps, reduction="none")
    expected_nll = F.cross_entropy(logits, torch.tensor(labels), reduction="none")
    assert [t.id for t in result.tokens] == labels and [t.position for t in result.tokens] == positions
    assert len(labels) >= 5 and result.vocab_size == logits.shape[-1] and result.label_smoothing == eps
    assert torch.allclose(torch.tensor([t.loss for t in result.tokens]), expected, atol=TOL, rtol=0)
    assert torch.allclose(torch.tensor([t.nll for t in result.tokens]), expected_nll, atol=TOL, rtol=0)
    if eps == 0:
        assert all(t.loss == t.nll for t in result.tokens)
    else:  # smoothing really changed the loss
        assert max(abs(t.loss - t.nll) for t in result.tokens) > 0.01
    assert result.mean_loss == pytest.approx(expected.mean().item(), abs=TOL)
    assert result.mean_nll == pytest.approx(sum(t.nll for t in result.tokens) / len(labels), rel=1e-12)
    assert result.perplexity == pytest.approx(math.exp(result.mean_nll), rel=1e-12)
    for token, row in zip(result.tokens, logits):
        assert_ranked_like(token, row)


def assert_ranked_like(token: TokenLoss, row: Tensor) -> None:
    """Probability, rank and top 3 as transformers' logits row (V,) gives them; a near tie may swap ranks."""
    probs = row.softmax(-1)
    true = row[token.id]
    assert token.prob == pytest.approx(probs[token.id].item(), abs=1e-5)
    assert 1 + (row > true + 1e-3).sum().item() <= token.rank <= (row > true - 1e-3).sum().item()  # counts itself
    assert [a.prob for a in token.alternatives] == pytest.approx(probs.topk(3).values.tolist(), abs=1e-5)
    assert [a.prob for a in token.alternatives] == pytest.approx([probs[a.id].item() for a in token.alternatives],
                                                                 abs=1e-5)


def test_ranks_and_alternatives_are_consistent(cases: dict[str, Case]) -> None:
    result = loss(cases["llama"], "llama", 0.1)
    assert {t.rank for t in result.tokens} != {1}  # a random model misses some tokens
    for token in result.tokens:
        probs = [a.prob for a in token.alternatives]
        assert probs == sorted(probs, reverse=True) and len(probs) == 3
        assert (token.rank == 1) == (token.alternatives[0].id == token.id)
        assert token.rank > 3 or token.id in [a.id for a in token.alternatives]


@pytest.mark.parametrize("name", ["llama", "marian"])
def test_smoothed_target_is_what_cross_entropy_compares_with(cases: dict[str, Case], name: str) -> None:
    eps = 0.3
    case = cases[name]
    result = loss(case, name, eps)
    logits, labels, _ = reference_rows(case, name)
    V = result.vocab_size
    for index, (token, row, label) in enumerate(zip(result.tokens, logits, labels)):
        target = result.smoothed_target(index)
        listed = sum(e.target_prob for e in target.entries)
        assert listed + target.other_prob * target.others == pytest.approx(1.0, abs=1e-12)
        assert target.others == V - len(target.entries) and target.other_prob == pytest.approx(eps / V)
        assert target.entries[0].id == token.id and target.entries[0].target_prob == pytest.approx(1 - eps + eps / V)
        assert [e.target_prob for e in target.entries[1:]] == pytest.approx([eps / V] * (len(target.entries) - 1))
        assert len({e.id for e in target.entries}) == len(target.entries)
        for entry in target.entries:
            assert entry.model_prob == pytest.approx(row.softmax(-1)[entry.id].item(), abs=1e-5)
        q = torch.full((V,), eps / V)  # the definition, written out
        q[label] += 1 - eps
        assert -(q * row.log_softmax(-1)).sum().item() == pytest.approx(token.loss, abs=TOL)
        assert (1 - eps) * token.nll + eps * token.uniform_nll == pytest.approx(token.loss, abs=1e-5)


def test_pseudo_log_likelihood_batches_equal_one_at_a_time(cases: dict[str, Case],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import lmtui.loss

    whole = loss(cases["bert"], "bert", 0.1)
    monkeypatch.setattr(lmtui.loss, "LOGITS_BUDGET", 1)  # one masked copy per forward pass
    monkeypatch.setattr(lmtui.loss, "ROWS_PER_CHUNK", 2)
    single = loss(cases["bert"], "bert", 0.1)
    assert [t.position for t in single.tokens] == [t.position for t in whole.tokens]
    assert [t.loss for t in single.tokens] == pytest.approx([t.loss for t in whole.tokens], abs=1e-5)
    last = len(cases["bert"].session.inputs(TEXT).ids) - 2  # [CLS] and [SEP] are not scored
    assert whole.tokens[0].position == 1 and whole.tokens[-1].position == last


def test_decoder_last_generation_is_scored_prompt_and_output(cases: dict[str, Case]) -> None:
    session = cases["gpt2"].session
    generated = session.generate("The quick", max_new_tokens=6)
    (sequence,) = generated.sequences
    result = session.loss(session.last_inputs())
    prompt = generated.prompt_token_ids
    assert [t.id for t in result.tokens] == [*prompt, *sequence.token_ids][1:]
    output = result.tokens[len(prompt) - 1:]
    assert [t.rank for t in output] == [1] * len(sequence.token_ids)  # greedy took the top choice each time
    assert -sum(t.nll for t in output) == pytest.approx(sequence.score, abs=1e-3)


@pytest.mark.parametrize("name", ["bart", "t5"])
def test_encoder_decoder_last_generation_is_scored_on_its_source(cases: dict[str, Case], name: str) -> None:
    session = cases[name].session
    generated = session.generate(TEXT, max_new_tokens=8)
    output = generated.sequences[0].token_ids
    result = session.loss(session.last_inputs())
    assert [t.id for t in result.tokens] == output and len(set(output)) > 2
    unforced = result.tokens[:-1] if name == "bart" else result.tokens  # BART forces </s> on the last step
    assert [t.rank for t in unforced] == [1] * len(unforced)
    retyped = session.loss(TokenInputs(session.inputs(TEXT).ids, tuple(output)))
    assert [t.loss for t in retyped.tokens] == [t.loss for t in result.tokens]


def test_nothing_generated_yet_and_target_beside_inputs(cases: dict[str, Case], gpt2_folder: Path) -> None:
    session = Session(gpt2_folder, device="cpu")
    with pytest.raises(InvalidOption, match="nothing has been generated yet"):
        session.loss(session.last_inputs())
    with pytest.raises(InvalidOption, match="give the target inside the TokenInputs"):
        cases["bart"].session.loss(TokenInputs((0, 5, 2)), target="x")


def test_inputs_that_cannot_be_scored_are_refused(cases: dict[str, Case]) -> None:
    gpt2, bart, bert = (cases[n].session for n in ("gpt2", "bart", "bert"))
    with pytest.raises(InvalidOption, match="the text is 1 token"):
        gpt2.loss("x")
    with pytest.raises(InvalidOption, match="give the target text too"):
        bart.loss(TEXT)
    with pytest.raises(InvalidOption, match="the target has no tokens"):
        bart.loss(TokenInputs((0, 5, 2), ()))
    with pytest.raises(InvalidOption, match="a target is read only by encoder-decoders"):
        gpt2.loss(TEXT, target="x")
    with pytest.raises(InvalidOption, match="a target is read only by encoder-decoders"):
        score_tokens(gpt2.model, "decoder", gpt2.tokenizer, TokenInputs((1, 2), (3,)))
    with pytest.raises(InvalidOption, match="no tokens to score besides special tokens"):
        bert.loss("")
    with pytest.raises(InvalidOption, match="the text is 65 tokens; this model reads at most 64"):
        gpt2.loss(TokenInputs(tuple(range(65))))
    for eps in (-0.1, 1.0, float("nan")):
        with pytest.raises(InvalidOption, match=r"label smoothing must be in \[0, 1\)"):
            gpt2.loss(TEXT, label_smoothing=eps)


def test_encoder_without_head_or_mask_token_is_refused(cases: dict[str, Case]) -> None:
    with pytest.raises(LmtuiError, match="pseudo-log-likelihood.*has none") as error:
        cases["bert-bare"].session.loss(TEXT)
    assert "\n" not in str(error.value)
    session = cases["bert"].session
    no_mask = load_tokenizer(cases["bert"].folder)
    no_mask.special = replace(no_mask.special, mask=None)
    with pytest.raises(LmtuiError, match="pseudo-log-likelihood.*the tokenizer has no mask token"):
        score_tokens(session.model, "encoder", no_mask, session.inputs(TEXT))


@pytest.fixture(scope="module")
def marian_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("marian-targets")
    en, de = _train(root, "en", ENGLISH), _train(root, "de", GERMAN)
    return {
        "shared spm": _save(root / "shared", en, en, _vocab(en)),
        "separate spm": _save(root / "separate", en, de, _vocab(en, de)),
        "spm pieces missing from vocab.json": _save(root / "missing", en, de, _vocab(en, de, drop=("▁d", "er", "e"))),
        "separate vocabs": _save(root / "vocabs", en, de, _vocab(en), _vocab(de)),
    }


@pytest.mark.parametrize("shape", ["shared spm", "separate spm", "spm pieces missing from vocab.json",
                                   "separate vocabs"])
def test_marian_encode_target_equals_text_target(marian_folders: dict[str, Path], shape: str) -> None:
    """target.spm segments, target_vocab.json numbers (with separate_vocabs), special tokens keep vocab.json's ids."""
    reference, ours = MarianTokenizer.from_pretrained(marian_folders[shape]), load_tokenizer(marian_folders[shape])
    parts = [*"abcdefghijklmnopqrstuvwxyz DERÄÖÜäöüßé0123456789.,!?()-", "  ", "\t", "der ", "über", "ꙮ", "▁",
             "</s>", "<pad>", "<unk>"]  # no >>de<< inside: a documented difference on the source side too
    rng = random.Random(0)
    noise = ["".join(rng.choice(parts) for _ in range(rng.randrange(1, 16))) for _ in range(200)]
    differs = False
    for text in [*MARIAN_TEXTS, *GERMAN_TEXTS, ">>de<< Der Hund", *noise]:
        expected = reference(text_target=text)["input_ids"]
        encoding = ours.encode_target(text)
        assert list(encoding.ids) == expected, text
        assert list(encoding.pieces) == reference.convert_ids_to_tokens(expected), text
        assert encoding.special[-1] and len(encoding.offsets) == len(expected)
        differs = differs or encoding.ids != ours.encode(text).ids
    assert differs == (shape != "shared spm")  # the target side really is read differently


def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["loss", *args], input=stdin)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("name", ["gpt2", "bert", "marian"])
def test_cli_json_is_the_contract_and_the_python_api(cases: dict[str, Case], name: str) -> None:
    case = cases[name]
    target = ["--target", TARGETS[name]] if name in TARGETS else []
    code, out, err = run(TEXT, "-m", str(case.folder), "--json", "-e", "0.1", *target)
    assert code == 0, err
    data = json.loads(out)
    assert {"label_smoothing", "tokens", "mean_loss", "perplexity"} <= data.keys()
    assert all({"id", "piece", "loss", "nll"} <= token.keys() for token in data["tokens"])
    expected = loss(case, name, 0.1)
    assert data["label_smoothing"] == 0.1 and data["perplexity"] == pytest.approx(expected.perplexity)
    assert [(t["id"], t["piece"]) for t in data["tokens"]] == [(t.id, t.piece) for t in expected.tokens]
    assert [t["loss"] for t in data["tokens"]] == pytest.approx([t.loss for t in expected.tokens])
    assert data["mean_loss"] == pytest.approx(expected.mean_loss)


def test_cli_text_output_and_stdin(cases: dict[str, Case]) -> None:
    folder = str(cases["gpt2"].folder)
    code, out, _ = run(TEXT, "-m", folder, "--label-smoothing", "0.1")
    assert code == 0
    expected = loss(cases["gpt2"], "gpt2", 0.1)
    lines = out.splitlines()
    assert lines[0] == "scored: each token from its prefix" and lines[1].split()[:5] == ["pos", "piece", "nll",
                                                                                           "loss", "rank"]
    first = expected.tokens[0]
    assert lines[2].split()[:5] == [str(first.position), first.piece, f"{first.nll:.4f}", f"{first.loss:.4f}",
                                    str(first.rank)]
    assert len(lines) == 3 + len(expected.tokens)
    assert lines[-1].startswith(f"mean loss {expected.mean_loss:.4f} (label smoothing 0.1)")
    assert f"perplexity {expected.perplexity:.4g} over {len(expected.tokens)} tokens" in lines[-1]
    from_arg = run(TEXT, "-m", folder, "--json")[1]
    assert run("-m", folder, "--json", stdin=TEXT)[1] == from_arg == run("-", "-m", folder, "--json", stdin=TEXT)[1]


@pytest.mark.parametrize(("name", "args", "message"), [
    ("gpt2", [TEXT, "-e", "1"], r"label smoothing must be in \[0, 1\), not 1.0"),
    ("gpt2", [TEXT, "-e", "-0.5"], r"label smoothing must be in \[0, 1\), not -0.5"),
    ("gpt2", [TEXT, "-e", "nan"], r"label smoothing must be in \[0, 1\), not nan"),
    ("gpt2", ["x"], "the text is 1 token"),
    ("gpt2", [TEXT, "--target", "x"], "a target is read only by encoder-decoders"),
    ("gpt2", ["x" * 65], "the text is 65 tokens; this model reads at most 64"),
    ("bart", [TEXT], "an encoder-decoder scores a target given the source"),
])
def test_cli_usage_errors_are_one_line_exit_2(cases: dict[str, Case], name: str, args: list[str],
                                              message: str) -> None:
    code, out, err = run(*args, "-m", str(cases[name].folder))
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("Error: ")
    assert re.search(message, err)


def test_cli_encoder_without_head_is_one_line_exit_1(cases: dict[str, Case]) -> None:
    code, _, err = run(TEXT, "-m", str(cases["bert-bare"].folder))
    assert code == 1 and len(err.splitlines()) == 1 and "masked-language-model head" in err
