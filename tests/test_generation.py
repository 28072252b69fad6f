"""Session.generate / Session.stream: streamed text is the final text, in any script."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmtui.checkpoint import DEFAULT_MODEL
from lmtui.errors import InvalidOption
from lmtui.session import Session

PROMPTS = ["The quick brown fox", "你好，世界。我喜欢羊驼。", "I ❤️ 🦙 llamas 🐪"]


@pytest.fixture(scope="module")
def session(gpt2_folder: Path) -> Session:
    return Session(gpt2_folder, device="cpu")


@pytest.mark.parametrize("prompt", PROMPTS)
@pytest.mark.parametrize("seed", range(4))
def test_streamed_pieces_join_to_the_final_text(session: Session, prompt: str, seed: int) -> None:
    """Sampling from a random byte-level model produces arbitrary byte sequences, split characters included."""
    run = session.stream(prompt, strategy="sample", seed=seed, top_k=0, max_new_tokens=24)
    pieces = list(run)
    assert run.result is not None and session.last is run.result
    (sequence,) = run.result.sequences
    assert "".join(pieces) == sequence.text
    assert sequence.text == session.tokenizer.decode(sequence.token_ids, skip_special_tokens=True)
    assert all("\ufffd" not in piece for piece in pieces) or "\ufffd" in sequence.text


@pytest.mark.parametrize("strategy", ["greedy", "sample"])
def test_a_stop_string_ending_inside_a_token_is_not_streamed_past(strategy: str) -> None:
    """The stream stops where the final text is cut, even when the stop string ends inside the last token."""
    session = Session(DEFAULT_MODEL, device="cpu")  # real words: tokens of several characters
    full = session.generate(PROMPTS[0], strategy=strategy, seed=0, max_new_tokens=12).sequences[0]
    pieces = [session.tokenizer.decode([i], skip_special_tokens=True) for i in full.token_ids]
    last = next(n for n, piece in enumerate(pieces) if len(piece.strip()) >= 2 and n > 0)
    before = "".join(pieces[:last])
    stop = (before + pieces[last])[len(before) - 1: len(before) + 1]  # the last character before, the first inside
    assert stop in full.text, f"no token of two characters or more to cut inside: {pieces!r}"
    run = session.stream(PROMPTS[0], strategy=strategy, seed=0, max_new_tokens=12, stop=(stop,))
    streamed = "".join(run)
    (sequence,) = run.result.sequences
    assert sequence.finish_reason == "stop" and sequence.text.endswith(stop)
    assert streamed == sequence.text


def test_prompt_ids_are_the_tokenizers(session: Session) -> None:
    result = session.generate(PROMPTS[1], max_new_tokens=2)
    assert result.prompt_token_ids == list(session.tokenizer.encode(PROMPTS[1]).ids)


def test_empty_prompt_starts_from_bos(session: Session) -> None:
    result = session.generate("", max_new_tokens=3)
    assert result.prompt_token_ids == [session.tokenizer.special.bos.id]


def test_options_are_validated_before_any_work(session: Session) -> None:
    with pytest.raises(InvalidOption, match="--top-p"):
        session.stream("hello", top_p=2.0)
    assert session.last is not None  # the previous run is still there to inspect


def test_generation_config_defaults_apply(tmp_path: Path, gpt2_folder: Path) -> None:
    import json
    import shutil

    shutil.copytree(gpt2_folder, tmp_path / "m")
    (tmp_path / "m" / "generation_config.json").write_text(
        json.dumps({"do_sample": True, "top_k": 7, "temperature": 0.5, "max_new_tokens": 5, "eos_token_id": [0, 1]})
    )
    settings = Session(tmp_path / "m").settings("hello")[1]
    assert (settings.strategy, settings.top_k, settings.temperature, settings.max_new_tokens) == ("sample", 7, 0.5, 5)
    assert settings.eos_token_ids == (0, 1)
