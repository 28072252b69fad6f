"""The app's plain-data parts, without a screen: the decoding form's fields, the beam tree, exports."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest

from lmtui.decoding.records import BeamStep, Hypothesis
from lmtui.decoding.settings import GenerationSettings
from lmtui.errors import InvalidOption
from lmtui.generation import GeneratedText, GenerateResult
from lmtui.tui import export
from lmtui.tui.options import FIELDS, field_named_in, parse, readable, shown
from lmtui.tui.text import bar, count, visible
from lmtui.tui.views.beams import nodes_by_step, survivor_tree


def test_fields_are_generation_settings() -> None:
    names = {field.name for field in fields(GenerationSettings)}
    assert {field.name for field in FIELDS} <= names


def test_parse_keeps_the_chosen_strategys_fields() -> None:
    texts = {"num_beams": "3", "temperature": "0.7", "max_new_tokens": " 12 ", "top_k": ""}
    assert parse("beam", texts, "never") == {"strategy": "beam", "num_beams": 3, "max_new_tokens": 12,
                                             "early_stopping": "never"}
    assert parse("sample", texts, "true") == {"strategy": "sample", "temperature": 0.7, "max_new_tokens": 12}
    with pytest.raises(InvalidOption, match="--temperature 'hot' is not a number"):
        parse("sample", {"temperature": "hot"}, None)


def test_stop_texts_are_typed_with_escapes_and_kept_exactly() -> None:
    texts = {"stop": " the|\\n\\n|a\\|b|\\\\", "min_new_tokens": "3"}
    options = parse("greedy", texts, None)
    assert options["stop"] == (" the", "\n\n", "a|b", "\\") and options["min_new_tokens"] == 3
    assert shown(GenerationSettings(stop=options["stop"]), "stop") == texts["stop"]  # shown as it is typed
    assert shown(GenerationSettings(), "stop") == "none"
    with pytest.raises(InvalidOption, match="--stop 'x\\\\\\\\q' has an unknown escape"):
        parse("greedy", {"stop": "x\\q"}, None)
    assert readable("--stop needs a non-empty text") == "stop at needs a non-empty text"


def test_session_messages_read_in_the_forms_words() -> None:
    message = "--num-return-sequences (5) cannot exceed --num-beams (4)"
    assert field_named_in(message).name == "num_return_sequences"
    assert readable(message) == "sequences (5) cannot exceed beams (4)"
    settings = GenerationSettings(min_p=None, seed=None, top_k=0)
    assert [shown(settings, name) for name in ("min_p", "seed", "top_k", "early_stopping")] == \
        ["off", "random", "0 (off)", "false"]


def test_text_helpers() -> None:
    assert visible(" a\tb\n\x00") == "·a→b⏎\\x00"
    assert (count(2_612_345), count(950), count(1_100_000_000)) == ("2.6M", "950", "1.1B")
    assert bar(1.0, 4) == "████" and bar(0.0, 4) == "" and len(bar(0.5, 5)) == 3


def hypothesis(parent: int, token: int, score: float, status: str) -> Hypothesis:
    return Hypothesis(parent, token, score, status)  # type: ignore[arg-type]


STEPS = [
    BeamStep(0, (hypothesis(0, 5, -1.0, "running"), hypothesis(0, 6, -1.5, "running"),
                 hypothesis(0, 7, -3.0, "pruned"))),
    BeamStep(1, (hypothesis(0, 8, -2.0, "running"), hypothesis(0, 9, -2.2, "running"),
                 hypothesis(1, 0, -1.9, "finished"), hypothesis(1, 3, -4.0, "pruned"))),
    BeamStep(2, (hypothesis(1, 4, -2.5, "running"), hypothesis(0, 4, -2.6, "running"),
                 hypothesis(0, 0, -2.1, "finished"))),
]


def test_beam_nodes_follow_their_parents() -> None:
    table = nodes_by_step(STEPS)
    assert [node.tokens for node in table[1]] == [(5, 8), (5, 9), (6, 0), (6, 3)]
    assert [node.tokens for node in table[2]] == [(5, 9, 4), (5, 8, 4), (5, 8, 0)]


def test_survivor_tree_merges_shared_beginnings() -> None:
    tree = survivor_tree(nodes_by_step(STEPS))
    # finished (6, 0) and (5, 8, 0); running (5, 9, 4) and (5, 8, 4)
    assert [child.tokens for child in tree.children] == [(6, 0), (5,)]
    five = tree.children[1]
    assert [child.tokens for child in five.children] == [(8,), (9, 4)]
    eight = five.children[0]
    assert [child.tokens for child in eight.children] == [(0,), (4,)]
    assert [end.hypothesis.status for end in eight.children[0].ends] == ["finished"]


def result(text: str) -> GenerateResult:
    settings = GenerationSettings(strategy="sample", seed=3, top_p=0.9)
    return GenerateResult("a prompt", [1, 2], settings, [GeneratedText(text, [4, 0], -1.25, "eos")], ())


def test_export_writes_json_and_markdown(tmp_path: Path) -> None:
    record = export.session_record(None, "a prompt", None, {"output": result("```code``` and [b]x[/b]")})
    json_path, md_path = export.write(record, tmp_path)
    again = export.write(record, tmp_path)  # a second export in the same second gets its own names
    assert again[0] != json_path and again[0].exists()
    data = json.loads(json_path.read_text())
    (run,) = data["runs"]
    assert run["seed"] == 3 and run["settings"]["top_p"] == 0.9 and "record_top_k" not in run["settings"]
    assert run["sequences"][0] == {"text": "```code``` and [b]x[/b]", "token_ids": [4, 0], "score": -1.25,
                                   "finish_reason": "eos"}
    markdown = md_path.read_text()
    assert "````text\n```code``` and [b]x[/b]\n````" in markdown  # fenced past the text's own backticks
    assert "seed=3" in markdown and "### 1: score -1.2500, eos" in markdown


def test_lmtui_without_a_command_opens_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from lmtui.cli import main

    opened = []
    monkeypatch.setattr("lmtui.tui.app.run", lambda *args: opened.append(args))
    assert CliRunner().invoke(main, ["-m", "some/model", "--dtype", "bfloat16"]).exit_code == 0
    assert CliRunner().invoke(main, []).exit_code == 0
    assert opened == [("some/model", "auto", "bfloat16"), (None, "auto", "auto")]


def test_group_options_are_the_commands_defaults(gpt2_folder: Path) -> None:
    from click.testing import CliRunner

    from lmtui.cli import main

    done = CliRunner().invoke(main, ["-m", str(gpt2_folder), "--dtype", "bfloat16", "info", "--json"])
    assert done.exit_code == 0, done.output
    info = json.loads(done.stdout)
    assert info["path"] == str(gpt2_folder) and info["dtype"] == "bfloat16"
