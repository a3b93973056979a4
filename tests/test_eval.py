"""`axolotl-multiturn eval`: held-out conversations read by axolotl's loader, each question prompted as the
config's chat template renders its gold history for generation, scored, reported; bad input refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.axolotl

HELD_OUT = [
    [{"role": "system", "content": "Answer from the story."}, {"role": "user", "content": "Story: Ann has a red kite."},
     {"role": "assistant", "content": "Yes."}, {"role": "user", "content": "What colour is it?"},
     {"role": "assistant", "content": "Red."}],
    [{"role": "user", "content": "Who flew it?"}, {"role": "assistant", "content": "Ann did."}],
]


def write(tmp_path: Path, tiny_model: Path, **extra) -> Path:
    data = tmp_path / "held-out.jsonl"
    data.write_text("".join(json.dumps({"messages": m}) + "\n" for m in HELD_OUT))
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({
        "base_model": str(tiny_model), "plugins": ["axolotl_multiturn.MultiTurnPlugin"],
        "datasets": [{"path": str(data), "type": "axolotl_multiturn.chat"}],
        "test_datasets": [{"path": str(data), "type": "axolotl_multiturn.chat"}],
        "sequence_len": 256, "micro_batch_size": 1, "num_epochs": 1, "learning_rate": 1e-4,
        "output_dir": str(tmp_path / "out"), **extra}))
    return config


def test_each_prompt_is_the_configs_template_rendering_of_the_gold_history(tmp_path: Path, tiny_model: Path) -> None:
    """The config names a template other than the tokenizer's (qwen_25 adds its own system prompt where a
    conversation has none): the prompts are that template's, from transformers' own renderer."""
    from axolotl.utils.chat_templates import get_chat_template
    from transformers import AutoTokenizer

    from axolotl_multiturn.evaluation.heldout import held_out

    config = write(tmp_path, tiny_model, chat_template="qwen_25")
    _, _, held = held_out(config)
    tok = AutoTokenizer.from_pretrained(tiny_model)
    assert [(q.conversation, q.message, q.golds) for q in held.asked] == [
        (0, 2, ("Yes.",)), (0, 4, ("Red.",)), (1, 1, ("Ann did.",))]
    for q in held.asked:
        expected = tok.apply_chat_template(HELD_OUT[q.conversation][: q.message], chat_template=get_chat_template("qwen_25"),
                                           add_generation_prompt=True, tokenize=True, return_dict=False)
        assert held.prompt(q) == expected
    assert "You are Qwen" in tok.decode(held.prompt(held.asked[2]))


def test_the_command_reports_writes_json_and_a_picture(tmp_path: Path, tiny_model: Path,
                                                       capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """The console script once (a process of its own), then its `main` in this process (axolotl's imports,
    about 14 s a process here, paid once)."""
    from PIL import Image

    from axolotl_multiturn.cli import main

    config = write(tmp_path, tiny_model)
    cli = str(Path(sys.executable).with_name("axolotl-multiturn"))
    env = {**os.environ, "COLUMNS": "200"}
    first = subprocess.run([cli, "eval", str(config), "--json", str(tmp_path / "before.json"), "--max-new-tokens", "4"],
                           capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    before = json.loads((tmp_path / "before.json").read_text())
    assert (before["questions"], before["model"], before["data"]) == (3, "base model", "test_datasets")
    assert [(a["question"], a["golds"]) for a in before["answers"]] == [
        ("Story: Ann has a red kite.", ["Yes."]), ("What colour is it?", ["Red."]), ("Who flew it?", ["Ann did."])]
    assert before["f1"] == pytest.approx(sum(a["f1"] for a in before["answers"]) / 3)
    assert before["stopped"] == pytest.approx(sum(a["stopped"] for a in before["answers"]) / 3)

    png = tmp_path / "scores.png"
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["eval", str(config), "--model", str(tiny_model), "--before", str(tmp_path / "before.json"),
                 "--png", str(png), "--questions", "1", "--max-new-tokens", "4"]) == 0
    second = capsys.readouterr().out
    assert "before" in second and str(tiny_model) in second
    assert "Ann has a red kite" in second and "Who flew it?" not in second  # --questions 1
    assert Image.open(png).size == (760, 420)


@pytest.mark.parametrize("case, message", [
    ("no held-out data", "no held-out data: add a `test_datasets:` entry"),
    ("no such model", "--model {tmp}/nowhere: no such folder"),
    ("bad before", "--before {tmp}/config.yml: not a JSON file written by eval --json"),
])
def test_bad_input_is_refused_with_what_to_do(tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture,
                                              case: str, message: str) -> None:
    from axolotl_multiturn.cli import main

    config = write(tmp_path, tiny_model)
    argv = ["eval", str(config)]
    if case == "no held-out data":
        data = yaml.safe_load(config.read_text())
        del data["test_datasets"]
        config.write_text(yaml.safe_dump(data))
    elif case == "no such model":
        argv += ["--model", str(tmp_path / "nowhere")]
    else:
        argv += ["--before", str(config)]
    assert main(argv) == 2
    assert message.format(tmp=tmp_path) in capsys.readouterr().err


def test_pairwise_accuracy_is_the_log_probabilities_of_transformers_renders(tmp_path: Path, tiny_model: Path) -> None:
    """Held-out pairs of a DPO config: each completion's log-probability against the sum over the tokens
    that a prefix diff of transformers' chatml rendering gives (less the newline after <|im_end|>, which
    the model never writes), from the model's own logits."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from axolotl_multiturn.cli import main

    pairs = [{"input": {"messages": m[:-1]}, "preferred_output": [m[-1]],
              "non_preferred_output": [{"role": "assistant", "content": other}]}
             for m, other in ((HELD_OUT[0], "Blue, I think."), (HELD_OUT[1], "Tom."))]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    config = tmp_path / "dpo.yml"
    config.write_text(yaml.safe_dump({
        "base_model": str(tiny_model), "plugins": ["axolotl_multiturn.MultiTurnPlugin"], "rl": "dpo",
        "datasets": [{"path": str(data), "type": "axolotl_multiturn.chat"}],
        "test_datasets": [{"path": str(data), "type": "axolotl_multiturn.chat"}],
        "sequence_len": 256, "micro_batch_size": 1, "num_epochs": 1, "learning_rate": 1e-4,
        "dataset_prepared_path": str(tmp_path / "prepared"), "output_dir": str(tmp_path / "out")}))
    assert main(["eval", str(config), "--json", str(tmp_path / "pairs.json")]) == 0
    got = json.loads((tmp_path / "pairs.json").read_text())

    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()

    def logprob(prompt: list[dict], output: dict) -> float:
        start = tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=False)
        whole = tok.apply_chat_template([*prompt, output], tokenize=True, return_dict=False)[:-1]
        assert whole[: len(start)] == start and tok.decode(whole[-1:]) == "<|im_end|>"
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([whole])).logits[0].log_softmax(-1)
        return sum(float(logits[k - 1, whole[k]]) for k in range(len(start), len(whole)))

    margins = [logprob(p["input"]["messages"], p["preferred_output"][0])
               - logprob(p["input"]["messages"], p["non_preferred_output"][0]) for p in pairs]
    assert got["pairs"] == 2
    assert got["margin"] == pytest.approx(sum(margins) / 2, abs=1e-3)
    assert got["accuracy"] == sum(m > 0 for m in margins) / 2
