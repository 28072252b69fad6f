"""Export a session (model, prompt, settings with the seed, outputs) as JSON and Markdown files."""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmtui.tui.options import FIELDS

if TYPE_CHECKING:
    from lmtui.generation import GenerateResult
    from lmtui.masked import MaskPrediction
    from lmtui.session import ModelInfo

MODEL_KEYS = ("name", "path", "family", "model_type", "kind", "parameters", "dtype", "device", "attention_backend")


def session_record(info: ModelInfo | None, prompt: str, target: str | None, runs: dict[str, GenerateResult],
                   masks: list[MaskPrediction] | None = None) -> dict[str, Any]:
    """Plain data for one session: what a JSON file holds and the Markdown is written from."""
    record: dict[str, Any] = {
        "model": {key: getattr(info, key) for key in MODEL_KEYS} if info is not None else None,
        "prompt": prompt,
    }
    if target is not None:
        record["target"] = target
    record["runs"] = [run_record(lane, result) for lane, result in runs.items()]
    if masks is not None:
        record["masks"] = [asdict(prediction) for prediction in masks]
    return record


def run_record(lane: str, result: GenerateResult) -> dict[str, Any]:
    settings = {key: value for key, value in asdict(result.settings).items() if key != "record_top_k"}
    return {
        "lane": lane,
        "strategy": result.strategy,
        "seed": result.settings.seed,
        "settings": settings,
        "prompt_token_ids": result.prompt_token_ids,
        "sequences": [asdict(sequence) for sequence in result.sequences],
    }


def markdown(record: dict[str, Any]) -> str:
    lines = ["# lmtui session", ""]
    model = record["model"]
    if model is not None:
        lines += [f"Model: **{model['name']}** ({model['family']} {model['kind']}, {model['parameters']:,} "
                  f"parameters, {model['dtype']}, {model['device']})", ""]
    lines += ["## Prompt", "", *fenced(record["prompt"])]
    if "target" in record:
        lines += ["## Target", "", *fenced(record["target"])]
    for run in record["runs"]:
        title = run["strategy"] if run["lane"] in ("output", run["strategy"]) else f"{run['lane']}: {run['strategy']}"
        changed = ", ".join(f"{key}={value!r}" for key, value in run["settings"].items()
                            if key in shown_settings(run["strategy"]))
        lines += [f"## Output ({title})", "", f"Settings: {changed}", ""]
        for number, sequence in enumerate(run["sequences"], start=1):
            lines += [f"### {number}: score {sequence['score']:.4f}, {sequence['finish_reason']}", "",
                      *fenced(sequence["text"])]
    for mask in record.get("masks", []):
        lines += [f"## Mask at token {mask['position']}", "", "| token | probability |", "| --- | --- |"]
        lines += [f"| `{c['text']!r}` | {c['prob']:.4f} |" for c in mask["candidates"]]
        lines.append("")
    return "\n".join(lines)


def shown_settings(strategy: str) -> set[str]:
    """The settings that matter to a strategy: the fields the form shows for it."""
    return {field.name for field in FIELDS if strategy in field.strategies} | (
        {"early_stopping"} if strategy == "beam" else set())


def fenced(text: str) -> list[str]:
    """A code block whose fence is longer than any run of backticks in the text."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + "text", text, fence, ""]


def write(record: dict[str, Any], folder: Path) -> tuple[Path, Path]:
    """Write NAME.json and NAME.md into `folder` under a fresh timestamped name; return both paths."""
    stem = time.strftime("lmtui-session-%Y%m%d-%H%M%S")
    name, number = stem, 1
    while (folder / f"{name}.json").exists() or (folder / f"{name}.md").exists():
        number += 1
        name = f"{stem}-{number}"
    json_path, md_path = folder / f"{name}.json", folder / f"{name}.md"
    json_path.write_text(json.dumps(record, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    md_path.write_text(markdown(record), encoding="utf-8")
    return json_path, md_path


def output_text(result: GenerateResult | None, masks: list[MaskPrediction] | None) -> str:
    """The output as plain text for the clipboard: every sequence, or each mask's candidates."""
    if masks is not None:
        return "\n".join(f"{p.position}\t{c.text}\t{c.prob:.4f}" for p in masks for c in p.candidates)
    if result is None:
        return ""
    return "\n\n".join(sequence.text for sequence in result.sequences)
