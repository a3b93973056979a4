"""`axolotl preprocess` and `axolotl train` through the plugin, on the CPU, on the embedded tiny model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cli_runs
import pytest
import yaml
from chats import A, S, U, chat, trained_runs
from conftest import ROOT
from datasets import load_from_disk
from vocabularies import tokenizer

pytestmark = [pytest.mark.axolotl, pytest.mark.slow]


def run_axolotl(command: str, config: Path, cwd: Path, launcher: str = "python",
                **extra: str) -> subprocess.CompletedProcess:
    """`axolotl COMMAND CONFIG` as a user runs it, offline; `extra` adds environment variables. `axolotl train`
    runs with `--launcher python` (training in the CLI's own process) unless `launcher` says otherwise: the
    default `accelerate` starts two more Python processes that import the whole training stack again (about
    12 s a run here); the tests whose point is the default path pass `launcher="accelerate"`, and run the
    `axolotl` script itself. The others run its entry point in a child of a process that has imported axolotl
    already (`cli_runs`: the same entry point, argv, environment and exit status, 12 s less a run)."""
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"], "AXOLOTL_DO_NOT_TRACK": "1",
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "disabled",
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS") or str(os.cpu_count() or 1), **extra}
    argv = [command, str(config), *(["--launcher", launcher] if command == "train" else [])]
    if launcher == "python":
        return cli_runs.run(argv, env, cwd)
    return subprocess.run([str(Path(bin_dir) / "axolotl"), *argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def write_config(tmp_path: Path, tiny_model: Path, data: Path, **overrides) -> Path:
    """`tests/data/tiny-train.yml` on the tiny model, training on `data`, with `overrides`; its path."""
    config = yaml.safe_load((ROOT / "tests" / "data" / "tiny-train.yml").read_text())
    config.update(base_model=str(tiny_model), output_dir=str(tmp_path / "out"),
                  dataset_prepared_path=str(tmp_path / "prepared"), **overrides)
    config["datasets"][0]["path"] = str(data)
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_preprocess_and_train_through_the_plugin(tmp_path: Path, tiny_model: Path) -> None:
    rows = [chat((S, f"Story {i}: Ann has {i} red apples and a blue kite."), (U, "What does Ann have?"),
                 (A, "Apples and a kite."), (U, "How many apples?"), (A, f"{i}"))
            for i in range(24)]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"messages": r}) + "\n" for r in rows))
    path = write_config(tmp_path, tiny_model, data)

    pre = run_axolotl("preprocess", path, tmp_path)
    assert pre.returncode == 0, pre.stdout[-3000:] + pre.stderr[-3000:]
    assert "masking auto -> boilerplate (N=24 conversations" in pre.stdout + pre.stderr
    assert "axolotl_multiturn: tokenizing" in pre.stderr  # the progress bar of the one pass (see below)

    prepared_dirs = [p for p in (tmp_path / "prepared").iterdir() if p.is_dir()]
    assert len(prepared_dirs) == 1
    prepared = load_from_disk(str(prepared_dirs[0]))
    assert len(prepared) == len(rows)
    tok = tokenizer("chatml")
    by_ids = {tuple(tok.apply_chat_template(r, tokenize=True, return_dict=False)): r for r in rows}
    for row in prepared:
        messages = by_ids[tuple(row["input_ids"])]
        assert trained_runs(tok, messages, row["labels"]) == [
            messages[0]["content"], messages[1]["content"], messages[2]["content"] + "<|im_end|>",
            messages[3]["content"], messages[4]["content"] + "<|im_end|>"]

    train = run_axolotl("train", path, tmp_path, launcher="accelerate")  # as users start it
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    log = train.stdout + train.stderr
    losses = [line for line in log.splitlines() if "{'loss'" in line]
    assert len(losses) >= 1
    # the plugin's summary as training begins: in axolotl's log and through trainer.log (the integrations)
    assert f"axolotl_multiturn: {data}: trained by role: system 100.0%, user 100.0%, assistant 100.0%, " \
           "template 0.0%" in log
    assert "'multiturn/train/trained_share/assistant': '1'" in log
    # ... counted by preprocessing (another process: saved beside the prepared dataset), not again: the
    # training run neither tokenizes nor scans for `auto`, and its numbers are those of the data
    assert "axolotl_multiturn: tokenizing" not in log and "masking auto statistics" not in log
    tokens = sum(len(ids) for ids in prepared["input_ids"])
    trained = sum(sum(1 for label in labels if label != -100) for labels in prepared["labels"])
    assert f"axolotl_multiturn: {data}: 24 conversations, {tokens:,} tokens, {trained:,} trained " \
           f"({100 * trained / tokens:.1f}%), masking boilerplate" in log
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()


def test_split_windows_with_sample_packing_and_several_processes(tmp_path: Path, tiny_model: Path) -> None:
    """Conversations longer than sequence_len are split into windows; axolotl packs them (CPU, no flash
    attention: axolotl warns about cross-sample attention) with dataset_num_proc=2."""
    story = " ".join(f"Line {i} of a story about a red kite and a windy hill." for i in range(8))
    rows = [chat((S, story), *[t for k in range(6) for t in ((U, f"Question {k} about row {i}?"),
                                                               (A, f"Answer {k} for row {i}."))])
            for i in range(12)]
    data = tmp_path / "long.jsonl"
    data.write_text("".join(json.dumps({"messages": r}) + "\n" for r in rows))
    path = write_config(tmp_path, tiny_model, data, sequence_len=192, sample_packing=True, max_steps=2,
                        multiturn={"masking": "instruction"})

    # `axolotl train` alone: it prepares the rows (and saves them) as `preprocess` would, then trains on them
    train = run_axolotl("train", path, tmp_path)
    log = train.stdout + train.stderr
    assert train.returncode == 0, log[-3000:]
    assert "12 of 12 conversations longer than sequence_len=192 (overflow: split): 12 split into" in log
    assert "assistant turns lost: 0" in log
    prepared = load_from_disk(str(next(p for p in (tmp_path / "prepared").iterdir() if p.is_dir())))
    assert len(prepared) > len(rows) and max(len(ids) for ids in prepared["input_ids"]) <= 192
    tok = tokenizer("chatml")
    answers = [tok.decode([i for i, lab in zip(r["input_ids"], r["labels"]) if lab != -100]) for r in prepared]
    assert sorted(a for text in answers for a in text.split("<|im_end|>") if a) == sorted(
        m["content"] for r in rows for m in r if m["role"] == "assistant")


def test_agent_trajectories_preprocess_and_train(tmp_path: Path, tiny_model: Path) -> None:
    """OpenAI-shaped agent rows (tools, string arguments, null content, tool results) through the plugin
    with the qwen_25 template; every assistant generation is trained, as the prefix-diff oracle says."""
    from test_generations import SHAPES, oracle, render, template_tokenizer
    from test_generations import trained_runs as runs

    shapes = [SHAPES[name] for name in ("single_call", "several_queries")]
    rows = [{"messages": messages, "tools": tools, "id": f"row{k}"} for k in range(6)
            for messages, tools in shapes]
    data = tmp_path / "agent.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    path = write_config(tmp_path, tiny_model, data, chat_template="qwen_25", sequence_len=512,
                        multiturn={"masking": "instruction"})

    train = run_axolotl("train", path, tmp_path)  # prepares (and saves) the rows, then trains on them
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    prepared = load_from_disk(str(next(p for p in (tmp_path / "prepared").iterdir() if p.is_dir())))
    assert len(prepared) == len(rows)
    tok = template_tokenizer("qwen_25")
    texts = {}
    for messages, tools in shapes:
        text = render(tok, messages, tools)
        texts[tuple(tok(text, add_special_tokens=False)["input_ids"])] = (text, oracle(tok, messages, tools))
    for row in prepared:
        text, expected = texts[tuple(row["input_ids"])]
        trained = [text[a:b] for a, b in runs(tok, text, row["labels"])]
        assert trained == [generation for _, generation in expected.values()]
        assert trained[0].startswith("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": ")


def test_parity_rows_with_sample_packing_and_several_processes(tmp_path: Path, tiny_model: Path) -> None:
    """Qwen3 reasoning chats with `parity: expand` through `axolotl preprocess` with sample packing and two
    processes: the prepared rows are exactly the strategy's in one process (every turn in a row of its
    own, since Qwen3 drops earlier thinking), and the summary saved for training start counts them.
    (A packed training run over windows and two processes is `test_split_windows_...` above.)"""
    from axolotl.utils.dict import DictDefault
    from datasets import Dataset
    from transformers import AutoTokenizer

    from axolotl_multiturn.chat import load
    from axolotl_multiturn.reports.summary import Summary

    def turn(k: int, i: int) -> list[dict]:
        return [{"role": "user", "content": f"Question {k} of chat {i}?"},
                {"role": "assistant", "content": f"Answer {k}.", "reasoning_content": f"Thinking about {k} and {i}."}]

    rows = [{"messages": [m for k in range(3) for m in turn(k, i)]} for i in range(8)]
    data = tmp_path / "reasoning.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = write_config(tmp_path, tiny_model, data, chat_template="qwen3", sequence_len=256,
                        sample_packing=True, dataset_num_proc=2,
                        multiturn={"masking": "instruction", "parity": "expand"})

    pre = run_axolotl("preprocess", path, tmp_path)
    log = pre.stdout + pre.stderr
    assert pre.returncode == 0, log[-3000:]
    prepared = load_from_disk(str(next(p for p in (tmp_path / "prepared").iterdir() if p.is_dir())))
    expected = load(AutoTokenizer.from_pretrained(tiny_model), DictDefault(
        {"sequence_len": 256, "chat_template": "qwen3", "multiturn": {"masking": "instruction"}}),
        DictDefault({"path": str(data)})).wrap_dataset(Dataset.from_list(rows))
    assert len(prepared) == len(expected) == 3 * len(rows)
    assert sorted(zip(map(tuple, prepared["input_ids"]), map(tuple, prepared["labels"]))) == sorted(
        zip(map(tuple, expected["input_ids"]), map(tuple, expected["labels"])))

    [saved] = (tmp_path / "prepared").glob("axolotl_multiturn-*.summary.json")
    lines = Summary.from_json(saved.read_bytes()).lines()
    assert any(line.startswith(f"{data}: parity: 8 conversations train some turns in rows of their own (their "
                               "template renders history differently): 16 rows added, ") for line in lines)
    assert f"{data}: parity: 24 assistant turns have no row in their inference context" in lines[-1]
