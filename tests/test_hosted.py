"""Coming from the hosted API: `masking: hosted_auto` reproduces train_on_inputs="auto", and the
compatibility lint, fixes and token budget of `check-chat-jsonl`."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from chats import A, S, U, chat, trained_runs
from datasets import Dataset
from vocabularies import tokenizer

from axolotl_multiturn.chat import load


@pytest.mark.axolotl
@pytest.mark.parametrize(("rows", "mode", "runs"), [
    # conversational data: inputs masked (the hosted default for train_on_inputs="auto")
    ([chat((S, "Sys"), (U, "Q"), (A, "Ans"))], "instruction", [["Ans<|im_end|>"]]),
    # a weight anywhere: the hosted API sets train_on_inputs=true; weight 0 still masks its message
    ([chat((S, "Sys"), (U, "Q"), (A, "Ans")), chat((U, "Q2", 0), (A, "Ans2"))], "none",
     [["<|im_start|>system\nSys<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\nAns<|im_end|>\n"],
      ["<|im_start|>user\n", "<|im_end|>\n<|im_start|>assistant\nAns2<|im_end|>\n"]]),
])
def test_hosted_auto_is_the_hosted_rule(caplog: pytest.LogCaptureFixture, rows: list, mode: str,
                                        runs: list) -> None:
    tok = tokenizer("chatml")
    wrapper = load(tok, {"multiturn": {"masking": "hosted_auto"}}, {"path": "h"})
    with caplog.at_level(logging.INFO, logger="axolotl_multiturn.chat"):
        out = wrapper.wrap_dataset(Dataset.from_list([{"messages": r} for r in rows]))
    assert wrapper.strategy.mode.value == mode
    assert any(f"masking hosted_auto -> {mode}" in r.getMessage() for r in caplog.records)
    assert [trained_runs(tok, r, labels) for r, labels in zip(rows, out["labels"])] == runs


COMPAT = Path(__file__).parent / "examples" / "compat"
FIX = Path(__file__).parent / "examples" / "fix"


@pytest.mark.parametrize(("name", "profile"), [("openai.jsonl", "openai")])
def test_compatibility_findings_per_example_file(name: str, profile: str) -> None:
    """Each line holds the rule it is named for (hosted mode's examples: tests/test_hosted_clients.py)."""
    from axolotl_multiturn.lint.checker import check_lines

    expected = json.loads((COMPAT / "expected.json").read_text())[name]
    with open(COMPAT / name, "rb") as stream:
        assert [f"{f.line}:{f.column} {f.code}" for f in check_lines(name, stream, profile)] == expected


def test_compatibility_limits_on_files_too_big_to_ship(tmp_path: Path) -> None:
    """An image over 10 MB (OA106), more than 64 images (OA105), too few examples (OA103)."""
    from axolotl_multiturn.lint.checker import check_lines

    big = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * (14 * 2**20)}}
    line = json.dumps({"messages": [{"role": "user", "content": [big]}, {"role": "assistant", "content": "a"}]})
    codes = [f.code for f in check_lines("big.jsonl", [line.encode()], "openai")]
    assert codes == ["OA106", "MT121", "OA103"]  # the image over 10 MB: OpenAI's limit, and ours


def test_fix_writes_the_expected_copy_and_lists_what_it_left_out(tmp_path: Path, capsys) -> None:
    from axolotl_multiturn.cli.lint import main

    source = tmp_path / "data.jsonl"
    source.write_bytes((FIX / "input.jsonl").read_bytes())
    assert main(["--fix", str(source)]) == 1  # the original still has errors
    assert (tmp_path / "data.fixed.jsonl").read_bytes() == (FIX / "expected.jsonl").read_bytes()
    assert source.read_bytes() == (FIX / "input.jsonl").read_bytes()  # never touched without --in-place
    out = capsys.readouterr().out
    assert out.split("Found 3 errors and 2 warnings.\n")[1] == (
        f"fixed copy: {tmp_path / 'data.fixed.jsonl'} (3 conversations)\n"
        "  5 x CRLF line end written as LF\n  1 x blank line removed\n  1 x byte order mark removed\n"
        "  1 x reasoning renamed reasoning_content\n  1 x role written in lower case\n"
        "  1 x string arguments written as an object\n  1 x whitespace-only message at the end removed\n"
        "  1 lines left out (still invalid):\n    line 3: MT204 no assistant message: nothing to train on\n")
    assert main(["--fix", "--in-place", str(source)]) == 1
    assert source.read_bytes() == (FIX / "expected.jsonl").read_bytes()
    assert main([str(source)]) == 0


def test_fix_leaves_the_original_and_no_temporary_file_on_error(tmp_path: Path, monkeypatch) -> None:
    from axolotl_multiturn.lint import fix

    source = tmp_path / "data.jsonl"
    source.write_bytes((FIX / "input.jsonl").read_bytes())

    def broken(obj, changes):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(fix, "fix_object", broken)
    with pytest.raises(RuntimeError):
        fix.fix_file(source, in_place=True)
    assert source.read_bytes() == (FIX / "input.jsonl").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.jsonl"]


def test_token_budget_report(tmp_path: Path, capsys) -> None:
    """Lengths, long rows and what split does with them, and trained shares: numbers from an oracle that
    tokenizes `apply_chat_template` itself."""
    from test_generations import template_tokenizer

    from axolotl_multiturn.cli.lint import main

    tok = template_tokenizer("chatml")
    tok.save_pretrained(tmp_path / "tok")
    rows = [chat((U, "Hi"), (A, "Hello")), chat((S, "Be brief"), (U, "Q " * 40), (A, "A"), (U, "Again"), (A, "B")),
            chat((U, "Why?"), (A, "Because."))]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"messages": r}) + "\n" for r in rows) + "not json\n")
    lengths = [len(tok.apply_chat_template(r, tokenize=True, return_dict=False)) for r in rows]
    limit = len(tok.apply_chat_template(rows[1][:3], tokenize=True, return_dict=False))  # row 2's first unit
    assert main(["--tokenizer", str(tmp_path / "tok"), "--sequence-len", str(limit), str(data)]) == 1
    report = capsys.readouterr().out.split("Found 1 error and 0 warnings.\n")[1].splitlines()
    assert report[:3] == [
        f"token budget: {data}",
        f"  3 conversations, {sum(lengths):,} tokens; length min {min(lengths)}, median {sorted(lengths)[1]}, "
        f"p95 {int(np.percentile(lengths, 95))}, max {max(lengths)} (1 invalid lines not measured)",
        f"  1 longer than sequence_len={limit} (lines 2); overflow: split would cut them into 2 windows and lose "
        "0 assistant turns (a turn that cannot fit alone)"]
    answers = [len(tok(a + "<|im_end|>", add_special_tokens=False)["input_ids"]) for a in ("Hello", "A", "B", "Because.")]
    assert report[3].startswith(f"  trained tokens by masking mode: instruction "
                                f"{100 * sum(answers) / sum(lengths):.1f}%, boilerplate ")
    assert report[3].endswith(", none 100.0%")


def test_a_budget_that_loses_turns_is_a_finding(tmp_path: Path, capsys) -> None:
    """MT306 names each conversation whose assistant turns `overflow: split` would lose (one that does not
    fit even in a window of its own with the turn it answers); a warning, an error with --strict, and the
    closing line counts it instead of "All checks passed!"."""
    from test_generations import template_tokenizer

    from axolotl_multiturn.cli.lint import main

    tok = template_tokenizer("chatml")
    tok.save_pretrained(tmp_path / "tok")
    short = chat((U, "Hi"), (A, "Hello"))
    long_answer = chat((U, "Tell me"), (A, "word " * 60), (U, "Again"), (A, "ok"))
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"messages": r}) + "\n" for r in (short, long_answer, chat((U, "Bye"), (A, "Bye")))))
    limit = len(tok.apply_chat_template(long_answer[2:], tokenize=True, return_dict=False)) + 8
    assert len(tok.apply_chat_template(long_answer[:2], tokenize=True, return_dict=False)) > limit
    args = ["--tokenizer", str(tmp_path / "tok"), "--sequence-len", str(limit), str(data)]
    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == [f"{data}:2:1: MT306 1 assistant turn longer than sequence_len={limit} even in a window of "
                       "its own (with the turn it answers): overflow: split would leave it untrained; raise "
                       "sequence_len, or shorten the turn", "Found 0 errors and 1 warning."]
    assert main(["--strict", *args]) == 1
