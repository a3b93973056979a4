"""`compare` on a config with held-out data: each mode trained by `axolotl train` in its own run folder and
scored by `eval`; modes with identical labels trained once; a finished run not trained again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.axolotl

TRAIN = [
    [{"role": "system", "content": "Answer from the story."}, {"role": "user", "content": "Story: Ann has a red kite."},
     {"role": "assistant", "content": "Yes."}, {"role": "user", "content": "What colour is it?"},
     {"role": "assistant", "content": "Red."}],
    [{"role": "user", "content": "Who flew the kite?"}, {"role": "assistant", "content": "Ann did, in the park."}],
]
HELD_OUT = [[{"role": "user", "content": "Story: Tom has a blue boat. What colour?"}, {"role": "assistant", "content": "Blue."}]]


def generations(tok, messages: list[dict]) -> int:
    """Tokens of every assistant generation by prefix diffs of transformers' rendering: the turn rendered
    minus the history with the generation prompt, less chatml's newline after <|im_end|>, which the model
    never writes."""
    total = 0
    for i, message in enumerate(messages):
        if message["role"] == "assistant":
            whole = tok.apply_chat_template(messages[: i + 1], tokenize=True, return_dict=False)
            prompt = tok.apply_chat_template(messages[:i], add_generation_prompt=True, tokenize=True, return_dict=False)
            assert whole[: len(prompt)] == prompt and tok.decode(whole[-1:]) == "\n"
            total += len(whole) - len(prompt) - 1
    return total


def test_modes_with_the_same_labels_train_once_and_runs_resume(tmp_path: Path, tiny_model: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoTokenizer

    from axolotl_multiturn.evaluation import runs
    from axolotl_multiturn.reports.compare_heldout import compare_heldout, markdown

    for name, rows in (("train", TRAIN), ("held-out", HELD_OUT)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps({"messages": m}) + "\n" for m in rows))
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({
        "base_model": str(tiny_model), "plugins": ["axolotl_multiturn.MultiTurnPlugin"],
        "datasets": [{"path": str(tmp_path / "train.jsonl"), "type": "axolotl_multiturn.chat"}],
        "test_datasets": [{"path": str(tmp_path / "held-out.jsonl"), "type": "axolotl_multiturn.chat"}],
        "multiturn": {"masking": "none"}, "sequence_len": 256, "micro_batch_size": 1, "max_steps": 2,
        "num_epochs": 1, "learning_rate": 1e-3, "optimizer": "adamw_torch", "bf16": False, "fp16": False,
        "tf32": False, "save_strategy": "no", "logging_steps": 1, "output_dir": str(tmp_path / "out")}))

    before, results = compare_heldout(config, ["instruction", "hosted_auto"], [0])
    tok = AutoTokenizer.from_pretrained(tiny_model)
    trained = sum(generations(tok, m) for m in TRAIN)
    assert [(r.mode, r.same_as, r.trained_tokens) for r in results] == [
        ("instruction", None, trained), ("hosted_auto (instruction)", "instruction", trained)]
    assert results[0].seeds == results[1].seeds and results[0].seeds[0].questions == before.questions == 1
    run = tmp_path / "out" / "compare" / "instruction-seed0"
    written = yaml.safe_load((run / "config.yml").read_text())
    assert (written["multiturn"], written["seed"], written["output_dir"]) == (
        {"masking": "instruction"}, 0, str(run / "adapter"))
    assert (run / "adapter" / "config.json").is_file() and not (tmp_path / "out" / "compare" / "hosted_auto-seed0").exists()
    assert "| hosted_auto (instruction) = instruction |" in markdown(before, results)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(runs, "axolotl", no_training)
    again = compare_heldout(config, ["instruction"], [0])
    assert again == (before, results[:1])
