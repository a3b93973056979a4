"""Exact pairs through `axolotl train` with `rl: dpo`, on the CPU, on the embedded tiny model.

The batches the DPO trainer computes its loss on are captured inside `axolotl train` (`tests/capture.py`)
and compared with the pair oracle of `tests/corpus.py` (`completion_oracle`: prefix-diff of
`apply_chat_template` renders with the model's stop token), which does not use the engine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT
from corpus import completion_oracle, render
from test_end_to_end import run_axolotl

pytestmark = [pytest.mark.axolotl, pytest.mark.slow]

TINY = ROOT / "example_configs" / "coqa-dpo-tiny.yml"
COQA = ROOT / "example_configs" / "data" / "coqa-preference.jsonl"
STOPS = ("<|im_end|>",)


def config(tmp_path: Path, model: Path, data: Path, **overrides: Any) -> Path:
    """`example_configs/coqa-dpo-tiny.yml` on `model` and `data` with `overrides`; the capture plugin added."""
    cfg = yaml.safe_load(TINY.read_text())
    cfg.update(base_model=str(model), output_dir=str(tmp_path / "out"), dataset_prepared_path=str(tmp_path / "p"))
    cfg["datasets"][0]["path"] = str(data)
    cfg["plugins"] = [*cfg["plugins"], "capture.CapturePlugin"]
    for key, value in overrides.items():
        if value is None:
            cfg.pop(key, None)
        elif key == "dataset":
            entry = cfg["datasets"][0]
            entry.update(value)
            for name in [k for k, v in value.items() if v is None]:
                entry.pop(name)
        else:
            cfg[key] = value
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def hosted(line: dict) -> tuple[list[dict], dict, dict, Any]:
    """(prompt, chosen, rejected, tools) of a hosted-shape line, read directly."""
    return (line["input"]["messages"], line["preferred_output"][0], line["non_preferred_output"][0],
            line["input"].get("tools"))


def expected_rows(tok: Any, lines: list[dict], key: str = "reasoning_content",
                  masked: bool = False) -> dict[tuple[int, ...], list[int]]:
    """Per training sequence of the oracle (prompt ids + completion ids): its completion mask. With `masked`
    (reasoning: mask), the tokens inside the output's reasoning trace are 0."""
    out = {}
    for line in lines:
        prompt, chosen, rejected, tools = hosted(line)
        prompt_ids = tok(render(tok, prompt, tools, True, key), add_special_tokens=False)["input_ids"]
        for output in (chosen, rejected):
            found = completion_oracle(tok, prompt, output, tools, STOPS, key)
            assert found is not None, "the oracle has no completion for a test pair"
            text, ids = found
            mask = [1] * len(ids)
            trace = output.get("reasoning_content") if masked else None
            if trace:
                start = text.index(trace)
                pieces = tok(text, add_special_tokens=False, return_offsets_mapping=True)
                assert pieces["input_ids"] == ids
                mask = [0 if start <= a and b <= start + len(trace) else 1 for a, b in pieces["offset_mapping"]]
            out[tuple(prompt_ids + ids)] = [0] * len(prompt_ids) + mask
    return out


def captured(path: Path, pad: int) -> list[tuple[tuple[int, ...], list[int], tuple[int, ...], list[int]]]:
    """(chosen ids, chosen mask, rejected ids, rejected mask) per pair of each captured batch, padding
    checked and stripped."""
    pairs = []
    for batch in map(json.loads, path.read_text().splitlines()):
        rows = []
        for ids, attention, mask in zip(batch["input_ids"], batch["attention_mask"], batch["completion_mask"]):
            n = sum(attention)
            assert attention == [1] * n + [0] * (len(ids) - n) and ids[n:] == [pad] * (len(ids) - n)
            assert mask[n:] == [0] * (len(ids) - n)
            rows.append((tuple(ids[:n]), mask[:n]))
        half = len(rows) // 2
        pairs += [(*rows[i], *rows[half + i]) for i in range(half)]
    return pairs


def test_the_batches_inside_axolotl_train_are_the_oracle_pairs(tmp_path: Path, tiny_model: Path) -> None:
    """The CoQA sample's first 6 pairs (multi-turn histories in chatml, on Qwen2's vocabulary), prepared by
    `axolotl preprocess`, then 2 steps of 3 pairs read back by `axolotl train` (the batches captured, the loss
    not computed: `capture.py`): every pair reaches the model once, with the oracle's ids, and its completion
    mask covers exactly the answer through <|im_end|> (not the newline chatml prints after it, which TRL's own
    tokenization trains)."""
    from transformers import AutoTokenizer

    lines = [json.loads(line) for line in COQA.read_text().splitlines()[:6]]
    path = config(tmp_path, tiny_model, COQA, dataset={"split": "train[:6]"}, max_steps=2, micro_batch_size=3)
    run = run_axolotl("preprocess", path, tmp_path, PYTHONPATH=str(ROOT / "tests"))  # the config names capture
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert f"axolotl_multiturn: {COQA}: 6 pairs kept of 6;" in run.stdout + run.stderr
    (prepared,) = (tmp_path / "p").glob("multiturn-pairs-*")
    batches = tmp_path / "batches.jsonl"
    run = run_axolotl("train", path, tmp_path, CAPTURE_BATCHES=str(batches), CAPTURE_ONLY="1",
                      PYTHONPATH=str(ROOT / "tests"))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    log = run.stdout + run.stderr
    assert f"axolotl_multiturn: {COQA}: pairs read back from {prepared}" in log
    assert f"axolotl_multiturn: {COQA}: 6 pairs kept of 6;" in log
    assert "'multiturn/pairs/kept': '6'" in log and "'multiturn/pairs/too_long': '0'" in log  # trainer.log
    tok = AutoTokenizer.from_pretrained(tiny_model)
    expected = expected_rows(tok, lines)
    pairs = captured(batches, tok.pad_token_id)
    assert len(pairs) == 6
    seen = set()
    for chosen, chosen_mask, rejected, rejected_mask in pairs:
        assert expected.get(chosen) == chosen_mask and expected.get(rejected) == rejected_mask
        seen |= {chosen, rejected}
    assert seen == set(expected)
    ends = {ids[-1] for ids in expected}
    assert ends == {tok.convert_tokens_to_ids("<|im_end|>")}  # nothing after the stop token


#: Traces end in a word: Qwen2's BPE merges punctuation with the newline after it (".\n"), a token half
#: trace, half markup that `reasoning: mask` cannot label (such a pair is refused, naming its line).
REASONING_PAIRS = [
    {"input": {"messages": [{"role": "system", "content": "Answer briefly."},
                            {"role": "user", "content": "What is 3 + 4?"},
                            {"role": "assistant", "content": "7."},
                            {"role": "user", "content": "And 3 + 5?"}]},
     "preferred_output": [{"role": "assistant", "content": "8.", "reasoning_content": "Three and five make eight"}],
     "non_preferred_output": [{"role": "assistant", "content": "9.",
                               "reasoning_content": "Three and five make nine"}]},
    {"input": {"messages": [{"role": "user", "content": "Weather in Lyon?"}],
               "tools": [{"type": "function", "function": {
                   "name": "get_weather", "description": "Weather of a city",
                   "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                  "required": ["city"]}}}]},
     "preferred_output": [{"role": "assistant", "content": None, "reasoning_content": "I should look it up",
                           "tool_calls": [{"id": "call00001", "type": "function", "function": {
                               "name": "get_weather", "arguments": "{\"city\": \"Lyon\"}"}}]}],
     "non_preferred_output": [{"role": "assistant", "content": "It is sunny.",
                               "reasoning_content": "I will guess"}]},
]


def qwen3() -> str:
    """Qwen 3's template as TRL ships it (reasoning and tool calls, exact pairs on every kind)."""
    import trl

    return (Path(trl.__file__).parent / "chat_templates" / "qwen3.jinja").read_text()


def reasoning_run(tmp_path: Path, tiny_model: Path, **overrides: Any) -> tuple[Any, dict, Path]:
    """REASONING_PAIRS through `axolotl train` (one step of both pairs) with Qwen 3's template and
    `reasoning: mask` on the dataset entry (which axolotl's RL config drops: the plugin keeps it): the
    tokenizer with that template, the oracle's rows and the captured batches."""
    from transformers import AutoTokenizer

    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in REASONING_PAIRS))
    path = config(tmp_path, tiny_model, data, dataset={"split": None, "reasoning": "mask"}, max_steps=1,
                  micro_batch_size=2, chat_template="jinja", chat_template_jinja=qwen3(), **overrides)
    batches = tmp_path / "batches.jsonl"
    run = run_axolotl("train", path, tmp_path, CAPTURE_BATCHES=str(batches), PYTHONPATH=str(ROOT / "tests"))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    tok = AutoTokenizer.from_pretrained(tiny_model)
    tok.chat_template = qwen3()
    expected = expected_rows(tok, REASONING_PAIRS, masked=True)
    assert all(0 in mask[mask.index(1):] for mask in expected.values())  # each has a masked trace inside
    return tok, expected, batches


def test_reasoning_is_masked_and_tool_calls_trained_in_the_batches(tmp_path: Path, tiny_model: Path) -> None:
    """Under DPO, in the captured batch each completion's trace is 0 in the completion mask, and its markup,
    answer, tool-call markup and stop are 1; the ids are the oracle's."""
    tok, expected, batches = reasoning_run(tmp_path, tiny_model)
    pairs = captured(batches, tok.pad_token_id)
    assert len(pairs) == 2
    for chosen, chosen_mask, rejected, rejected_mask in pairs:
        assert expected.get(chosen) == chosen_mask and expected.get(rejected) == rejected_mask


#: A handful of short multi-turn pairs for the behavioural test (short, so that 151k-way logits stay cheap).
BEHAVIOUR_PAIRS = [
    {"input": {"messages": [{"role": "user", "content": "Pick a colour."}, {"role": "assistant", "content": "Red."},
                            {"role": "user", "content": "Another one?"}]},
     "preferred_output": [{"role": "assistant", "content": "Blue."}],
     "non_preferred_output": [{"role": "assistant", "content": "Green."}]},
    {"input": {"messages": [{"role": "system", "content": "Be brief."},
                            {"role": "user", "content": "Capital of France?"}]},
     "preferred_output": [{"role": "assistant", "content": "Paris."}],
     "non_preferred_output": [{"role": "assistant", "content": "Rome."}]},
    {"input": {"messages": [{"role": "user", "content": "2 + 2?"}, {"role": "assistant", "content": "4."},
                            {"role": "user", "content": "And 3 + 3?"}]},
     "preferred_output": [{"role": "assistant", "content": "6."}],
     "non_preferred_output": [{"role": "assistant", "content": "7."}]},
    {"input": {"messages": [{"role": "user", "content": "Say hello."}]},
     "preferred_output": [{"role": "assistant", "content": "Hello!"}],
     "non_preferred_output": [{"role": "assistant", "content": "Goodbye."}]},
]
#: Steps and thresholds. The model's weights are random, so before training every completion token has a
#: log-probability near -ln(151k) and the margin (chosen minus rejected, mean log-probability per completion
#: token, averaged over the pairs) is about 0. DPO with its SFT term (dpo_loss_type [sigmoid, sft]: the
#: chosen answers' likelihood too, as RPO does) for STEPS full fine-tuning steps on all 4 pairs at a constant
#: 1e-2 must raise it past MARGIN, and greedy decoding after each prompt must then write the chosen answer
#: and stop on <|im_end|>. The reference's log-probabilities are computed once, before training, through the
#: exact-pair collator (precompute_ref_log_probs), not at every step.
STEPS, BEFORE, MARGIN = 45, 0.5, 2.0


def margins(model_dir: Path, tok: Any, lines: list[dict]) -> float:
    """The mean over pairs of mean log p(chosen token) - mean log p(rejected token), on the oracle's ids."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    out = []
    for line in lines:
        prompt, chosen, rejected, tools = hosted(line)
        prompt_ids = tok(render(tok, prompt, tools, True), add_special_tokens=False)["input_ids"]
        means = []
        for output in (chosen, rejected):
            _, ids = completion_oracle(tok, prompt, output, tools, STOPS)
            with torch.no_grad():
                logits = model(torch.tensor([prompt_ids + ids])).logits[0, len(prompt_ids) - 1:-1]
            logps = torch.log_softmax(logits.float(), -1).gather(1, torch.tensor(ids)[:, None])
            means.append(float(logps.mean()))
        out.append(means[0] - means[1])
    return sum(out) / len(out)


def test_dpo_raises_the_margin_and_greedy_decoding_writes_the_chosen_answer(tmp_path: Path, tiny_model: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in BEHAVIOUR_PAIRS))
    path = config(tmp_path, tiny_model, data, dataset={"split": None}, max_steps=STEPS, micro_batch_size=4,
                  learning_rate=0.01, sequence_len=128, save_strategy="no", precompute_ref_log_probs=True)
    tok = AutoTokenizer.from_pretrained(tiny_model)
    before = margins(tiny_model, tok, BEHAVIOUR_PAIRS)
    assert abs(before) < BEFORE
    run = run_axolotl("train", path, tmp_path, CAPTURE_BATCHES=str(tmp_path / "b.jsonl"),
                      PYTHONPATH=str(ROOT / "tests"))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    first = json.loads((tmp_path / "b.jsonl").read_text().splitlines()[0])
    assert len(first["ref_chosen_logps"]) == 4  # the reference's log-probabilities, computed once before training
    after = margins(tmp_path / "out", tok, BEHAVIOUR_PAIRS)
    print(f"margin before {before:.3f}, after {after:.3f}")
    assert after > MARGIN
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    end = tok.convert_tokens_to_ids("<|im_end|>")
    for line in BEHAVIOUR_PAIRS:
        prompt, chosen, _, tools = hosted(line)
        prompt_ids = tok(render(tok, prompt, tools, True), add_special_tokens=False)["input_ids"]
        out = model.generate(torch.tensor([prompt_ids]), max_new_tokens=12, do_sample=False, eos_token_id=end,
                             pad_token_id=tok.pad_token_id)[0, len(prompt_ids):].tolist()
        assert out == completion_oracle(tok, prompt, chosen, tools, STOPS)[1]
        assert out[-1] == end


def test_preview_shows_the_pairs_the_trainer_gets(tmp_path: Path, tiny_model: Path) -> None:
    """`axolotl-multiturn preview` on a DPO config: each pair's prompt (masked), chosen and rejected with
    their trained tokens marked, from the rows the trainer receives; the trace of `reasoning: mask`
    unmarked; the same in the HTML report."""
    import io

    from rich.console import Console

    from axolotl_multiturn.reports.preview import preview

    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in REASONING_PAIRS))
    path = config(tmp_path, tiny_model, data, dataset={"split": None, "reasoning": "mask"},
                  chat_template="jinja", chat_template_jinja=qwen3())
    out = io.StringIO()
    pairs, summary = preview(path, rows=2, html=tmp_path / "r.html", console=Console(file=out, width=400))
    text = out.getvalue()
    assert [p.source for p in pairs] == [0, 1]
    assert "--- pair 0 (line 1)" in text and "--- pair 1 (line 2)" in text
    # the traces (5 and 5 tokens; 5 and 3 in pair 1) are the only masked tokens of the completions
    assert "chosen (10 of 15 tokens trained):\n«<think>\n»Three and five make eight«\n</think>\n\n8.<|im_end|>»" in text
    assert "rejected (10 of 15 tokens trained):\n«<think>\n»Three and five make nine«\n</think>\n\n9.<|im_end|>»" in text
    assert ('chosen (33 of 38 tokens trained):\n«<think>\n»I should look it up«\n</think>\n\n<tool_call>\n{"name": '
            '"get_weather", "arguments": {"city": "Lyon"}}\n</tool_call><|im_end|>»') in text
    assert "rejected (12 of 15 tokens trained):\n«<think>\n»I will guess«\n</think>\n\nIt is sunny.<|im_end|>»" in text
    assert f"{data}: 2 pairs kept of 2;" in text
    report = (tmp_path / "r.html").read_text()
    assert report.count("<h2>Pair ") == 2 and "id='pair-1-rejected'" in report
    assert '<span class="tok masked template" title="token 2 · id' in report


@pytest.mark.parametrize("rl", ["orpo", "simpo"])
def test_orpo_and_simpo_batches_are_the_oracle_pairs(tmp_path: Path, tiny_model: Path, rl: str) -> None:
    """ORPO and SimPO (TRL's ORPO and CPO trainers, which tokenize rows themselves) with the reasoning and
    tool-call pairs under `reasoning: mask`: in the captured batch, prompt + answer ids are the oracle's and
    the labels are the answer's ids where its completion mask is 1, -100 elsewhere (prompt, trace)."""
    tok, expected, batches = reasoning_run(tmp_path, tiny_model, rl=rl, rl_beta=None, dpo_loss_type=None,
                                           dpo_loss_weights=None, **({"simpo_gamma": 0.5} if rl == "simpo" else {}))
    (batch,) = map(json.loads, batches.read_text().splitlines())
    seen = set()
    for half in ("chosen", "rejected"):
        for ids, attention, labels in zip(batch[f"{half}_input_ids"], batch[f"{half}_attention_mask"],
                                          batch[f"{half}_labels"]):
            n = sum(attention)
            assert ids[n:] == [tok.pad_token_id] * (len(ids) - n) and labels[n:] == [-100] * (len(ids) - n)
            row = tuple(ids[:n])
            assert [t if m else -100 for t, m in zip(row, expected[row])] == labels[:n]
            seen.add(row)
    assert seen == set(expected)
