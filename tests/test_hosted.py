"""Coming from the hosted API: `masking: hosted_auto` reproduces train_on_inputs="auto", and the
compatibility lint, fixes and token budget of `check-chat-jsonl`."""

from __future__ import annotations

import logging

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
