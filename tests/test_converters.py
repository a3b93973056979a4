"""Converters: exact conversations from each format, row errors with source indices, atomic output,
and a third-party converter found through the entry-point group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from axolotl_multiturn.cli import main

SAMPLE = ROOT / "example_configs" / "data" / "coqa-sample.json"
SYSTEM = "Read the story and extract answers for the questions.\nStory: "


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def expected_coqa(story: dict) -> dict:
    messages = [{"role": "system", "content": SYSTEM + story["story"]}]
    for q, a in zip(story["questions"], story["answers"]):
        messages += [{"role": "user", "content": q["input_text"]}, {"role": "assistant", "content": a["input_text"]}]
    return {"messages": messages}


def test_coqa_official_json_round_trip(tmp_path: Path, capsys) -> None:
    out = tmp_path / "coqa.jsonl"
    assert main(["convert", "coqa", str(SAMPLE), "--to", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote 30 conversations to {out}\n"
    stories = json.loads(SAMPLE.read_text())["data"]
    rows = read_jsonl(out)
    assert rows == [expected_coqa(s) for s in stories]
    assert rows[0]["messages"][:3] == [
        {"role": "system", "content": SYSTEM + stories[0]["story"]},
        {"role": "user", "content": "Where was the bakery?"},
        {"role": "assistant", "content": "At the end of Willow Lane."}]
    assert len(rows[0]["messages"]) == 21


def hf_rows() -> list[dict]:
    """The sample in the layout of the HF dataset stanfordnlp/coqa (as a parquet or JSON export)."""
    return [{"source": s["source"], "story": s["story"], "questions": [q["input_text"] for q in s["questions"]],
             "answers": {"input_text": [a["input_text"] for a in s["answers"]],
                         "answer_start": [0] * len(s["answers"]), "answer_end": [0] * len(s["answers"])}}
            for s in json.loads(SAMPLE.read_text())["data"]]


@pytest.mark.parametrize("suffix", [".parquet", ".json", ".jsonl"])
def test_coqa_hf_exports(tmp_path: Path, suffix: str) -> None:
    source = tmp_path / f"coqa{suffix}"
    if suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(hf_rows()), source)
    elif suffix == ".json":
        source.write_text(json.dumps(hf_rows()))
    else:
        source.write_text("".join(json.dumps(r) + "\n" for r in hf_rows()))
    out = tmp_path / "out.jsonl"
    assert main(["convert", "coqa", str(source), "--to", str(out), "--system-prompt", "Story: {story}"]) == 0
    rows = read_jsonl(out)
    assert rows[3]["messages"][0] == {"role": "system", "content": "Story: " + hf_rows()[3]["story"]}
    assert [m["content"] for m in rows[3]["messages"][1:3]] == ["When was the race held?", "Every June."]


def test_bad_rows_are_reported_and_nothing_is_written(tmp_path: Path, capsys) -> None:
    rows = hf_rows()[:3]
    rows[1]["answers"]["input_text"].pop()
    rows[2]["story"] = "  "
    source = tmp_path / "coqa.json"
    source.write_text(json.dumps(rows))
    out = tmp_path / "out.jsonl"
    assert main(["convert", "coqa", str(source), "--to", str(out)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == ["source row 1: 10 questions but 9 answers", "source row 2: story is empty or not text",
                   f"2 source rows cannot be converted; {out} was not written (fix them, or pass --skip-invalid "
                   "to write the others)"]
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [source]  # no temporary file left behind

    assert main(["convert", "coqa", str(source), "--to", str(out), "--skip-invalid"]) == 0
    assert capsys.readouterr().out == f"wrote 1 conversations to {out}, skipped 2 source rows listed above\n"
    assert len(read_jsonl(out)) == 1


def test_a_row_the_linter_rejects_leaves_the_old_file_untouched(tmp_path: Path, capsys) -> None:
    source = tmp_path / "chats.json"
    source.write_text(json.dumps([
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]},
        {"conversations": [{"from": "gpt", "value": "I speak first"}, {"from": "human", "value": "odd"}]}]))
    out = tmp_path / "out.jsonl"
    out.write_text("previous contents\n")
    assert main(["convert", "sharegpt", str(source), "--to", str(out)]) == 1
    assert capsys.readouterr().err.startswith("source row 1: MT201 first message is 'assistant'")
    assert out.read_text() == "previous contents\n"


def test_sharegpt(tmp_path: Path) -> None:
    source = tmp_path / "chats.jsonl"
    source.write_text(json.dumps({"conversations": [
        {"from": "system", "value": "Be kind."}, {"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]})
        + "\n" + json.dumps({"conversations": [{"from": "tool", "value": "x"}]}) + "\n")
    out = tmp_path / "out.jsonl"
    assert main(["convert", "sharegpt", str(source), "--to", str(out), "--skip-invalid"]) == 0
    assert read_jsonl(out) == [{"messages": [{"role": "system", "content": "Be kind."},
                                             {"role": "user", "content": "hi"},
                                             {"role": "assistant", "content": "hello"}]}]


def test_sharegpt_agent_rows_llama_factory_shape(tmp_path: Path) -> None:
    tools = [{"name": "get_weather", "description": "Weather", "parameters": {"type": "object"}}]
    source = tmp_path / "agent.jsonl"
    source.write_text(json.dumps({"system": "Use tools.", "tools": json.dumps(tools), "conversations": [
        {"from": "human", "value": "Weather in Paris and Rome?"},
        {"from": "function_call", "value": json.dumps([{"name": "get_weather", "arguments": {"city": "Paris"}},
                                                       {"name": "get_weather", "arguments": {"city": "Rome"}}])},
        {"from": "observation", "value": "rain"}, {"from": "observation", "value": "sun"},
        {"from": "gpt", "value": "Rain in Paris, sun in Rome."}]}) + "\n"
        + json.dumps({"conversations": [{"from": "human", "value": "x"}, {"from": "observation", "value": "y"}]})
        + "\n")
    out = tmp_path / "out.jsonl"
    assert main(["convert", "sharegpt", str(source), "--to", str(out), "--skip-invalid"]) == 0
    assert read_jsonl(out) == [{"messages": [
        {"role": "system", "content": "Use tools."},
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call00001", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
            {"id": "call00002", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Rome"}}}]},
        {"role": "tool", "tool_call_id": "call00001", "content": "rain"},
        {"role": "tool", "tool_call_id": "call00002", "content": "sun"},
        {"role": "assistant", "content": "Rain in Paris, sun in Rome."}],
        "tools": [{"type": "function", "function": tools[0]}]}]


def test_openai_rows_pass_through_and_the_legacy_function_shape_converts(tmp_path: Path) -> None:
    current = {"messages": [{"role": "user", "content": "Time?"},
                            {"role": "assistant", "content": None, "tool_calls": [
                                {"id": "abc", "type": "function", "function": {"name": "now", "arguments": "{}"}}]},
                            {"role": "tool", "tool_call_id": "abc", "content": "noon"},
                            {"role": "assistant", "content": "Noon.", "weight": 1}],
               "tools": [{"type": "function", "function": {"name": "now"}}], "parallel_tool_calls": False}
    legacy = {"functions": [{"name": "now"}], "messages": [
        {"role": "user", "content": "Time?"},
        {"role": "assistant", "content": None, "function_call": {"name": "now", "arguments": "{}"}},
        {"role": "function", "name": "now", "content": "noon"}, {"role": "assistant", "content": "Noon."}]}
    source = tmp_path / "openai.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in (current, legacy)))
    out = tmp_path / "out.jsonl"
    assert main(["convert", "openai", str(source), "--to", str(out)]) == 0
    converted = read_jsonl(out)
    assert converted[0] == current
    assert converted[1] == {"tools": [{"type": "function", "function": {"name": "now"}}], "messages": [
        {"role": "user", "content": "Time?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call00001", "type": "function", "function": {"name": "now", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call00001", "content": "noon"},
        {"role": "assistant", "content": "Noon."}]}


def test_alpaca_and_completion(tmp_path: Path) -> None:
    alpaca = tmp_path / "alpaca.json"
    alpaca.write_text(json.dumps([{"instruction": "Add.", "input": "2+2", "output": "4"},
                                  {"instruction": "Greet.", "input": "", "output": "Hi", "system": "Terse."}]))
    completion = tmp_path / "completion.jsonl"
    completion.write_text(json.dumps({"prompt": "Q?", "completion": "A."}) + "\n")
    assert main(["convert", "alpaca", str(alpaca), "--to", str(tmp_path / "a.jsonl")]) == 0
    assert main(["convert", "completion", str(completion), "--to", str(tmp_path / "c.jsonl")]) == 0
    assert read_jsonl(tmp_path / "a.jsonl") == [
        {"messages": [{"role": "user", "content": "Add.\n\n2+2"}, {"role": "assistant", "content": "4"}]},
        {"messages": [{"role": "system", "content": "Terse."}, {"role": "user", "content": "Greet."},
                      {"role": "assistant", "content": "Hi"}]}]
    assert read_jsonl(tmp_path / "c.jsonl") == [
        {"messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}]}]


def test_hub_unreachable_is_a_clear_error(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out.jsonl"
    assert main(["convert", "coqa", "--to", str(out)]) == 2
    assert "cannot load stanfordnlp/coqa from the hub" in capsys.readouterr().err
    assert not out.exists()


PLUGIN = '''
"""A third-party converter: CSV files with question,answer columns."""
import csv

from axolotl_multiturn.converters import hookimpl
from axolotl_multiturn.converters.spec import Row


class QACsv:
    name = "qa-csv"
    help = "CSV with question,answer columns"

    def add_arguments(self, parser):
        parser.add_argument("--system", default=None)

    def rows(self, source, args):
        with open(source, newline="") as stream:
            for index, record in enumerate(csv.DictReader(stream)):
                messages = [{"role": "system", "content": args.system}] if args.system else []
                messages += [{"role": "user", "content": record["question"]},
                             {"role": "assistant", "content": record["answer"]}]
                yield Row(index, conversation={"messages": messages})


@hookimpl
def axolotl_multiturn_converters():
    return [QACsv()]
'''


def test_third_party_converter_through_the_entry_point_group(tmp_path: Path) -> None:
    """How another package adds a source: a module with the hook, named in its entry points."""
    site = tmp_path / "site"
    (site / "qa_csv_converter-1.0.dist-info").mkdir(parents=True)
    (site / "qa_csv_converter.py").write_text(PLUGIN)
    (site / "qa_csv_converter-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: qa-csv-converter\nVersion: 1.0\n")
    (site / "qa_csv_converter-1.0.dist-info" / "entry_points.txt").write_text(
        "[axolotl_multiturn.converters]\nqa_csv = qa_csv_converter\n")
    data = tmp_path / "qa.csv"
    data.write_text("question,answer\nWho?,Ann.\nWhere?,Home.\n")
    out = tmp_path / "out.jsonl"
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run([sys.executable, "-m", "axolotl_multiturn.cli", "convert", "qa-csv", str(data),
                             "--to", str(out), "--system", "Answer briefly."], env=env, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert read_jsonl(out)[1] == {"messages": [{"role": "system", "content": "Answer briefly."},
                                               {"role": "user", "content": "Where?"},
                                               {"role": "assistant", "content": "Home."}]}


PAIRS = ROOT / "tests" / "examples" / "lint" / "good_preference.jsonl"
SHAPES = ("hosted", "trl", "trl-implicit", "axolotl")


def shape_name(row: dict) -> str:
    if "input" in row:
        return "hosted"
    return "axolotl" if "messages" in row else "trl" if "prompt" in row else "trl-implicit"


@pytest.mark.parametrize("shape", SHAPES)
def test_preference_shapes_round_trip(tmp_path: Path, shape: str) -> None:
    """Every pair of every shape, to `shape` and back to its own shape, is the line it was (tools, reasoning,
    tool calls and other keys included): the conversions are lossless."""
    rows = read_jsonl(PAIRS)
    there = tmp_path / f"{shape}.jsonl"
    assert main(["convert", "preference", str(PAIRS), "--to", str(there), "--shape", shape]) == 0
    converted = read_jsonl(there)
    assert {shape_name(r) for r in converted} == {shape}
    for k, (row, out) in enumerate(zip(rows, converted)):
        back = tmp_path / f"back{k}.jsonl"
        one = tmp_path / f"one{k}.jsonl"
        one.write_text(json.dumps(out) + "\n")
        assert main(["convert", "preference", str(one), "--to", str(back), "--shape", shape_name(row)]) == 0
        assert read_jsonl(back) == [row]


def test_hosted_to_trl_is_the_documented_mapping(tmp_path: Path) -> None:
    out = tmp_path / "trl.jsonl"
    assert main(["convert", "preference", str(PAIRS), "--to", str(out), "--shape", "trl"]) == 0
    source, converted = read_jsonl(PAIRS)[1], read_jsonl(out)[1]
    assert converted == {"prompt": source["input"]["messages"], "tools": source["input"]["tools"],
                         "chosen": source["preferred_output"], "rejected": source["non_preferred_output"]}


def test_a_pair_that_cannot_convert_names_its_row(tmp_path: Path, capsys) -> None:
    """An implicit-prompt pair whose conversations diverge before their last message has no one prompt."""
    rows = read_jsonl(PAIRS)
    diverging = {"chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "a"}],
                 "rejected": [{"role": "user", "content": "Hey"}, {"role": "assistant", "content": "b"}]}
    source = tmp_path / "pairs.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in (*rows, diverging)))
    out = tmp_path / "out.jsonl"
    assert main(["convert", "preference", str(source), "--to", str(out)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "source row 5: MT405 without a prompt, chosen and rejected must be one conversation up to their last "
        "message; they differ before it (give the shared start as `prompt`)",
        f"1 source rows cannot be converted; {out} was not written (fix them, or pass --skip-invalid to write "
        "the others)"]
    assert not out.exists()


def test_coqa_preference_sample_is_the_converter_output(tmp_path: Path) -> None:
    """example_configs/data/coqa-preference.jsonl is `convert coqa-preference` of the CoQA sample: per answer,
    its question after the story and the turns before it; chosen that answer, rejected another answer of the
    same story (read here from the source JSON, not from the converter)."""
    out = tmp_path / "pairs.jsonl"
    assert main(["convert", "coqa-preference", str(SAMPLE), "--to", str(out)]) == 0
    sample = ROOT / "example_configs" / "data" / "coqa-preference.jsonl"
    assert out.read_bytes() == sample.read_bytes()
    pairs = iter(read_jsonl(out))
    for story in json.loads(SAMPLE.read_text())["data"]:
        answers = [a["input_text"] for a in story["answers"]]
        history = expected_coqa(story)["messages"]
        for k, answer in enumerate(answers):
            pair = next(pairs)
            assert pair["input"] == {"messages": history[:2 + 2 * k]}
            assert pair["input"]["messages"][-1]["content"] == story["questions"][k]["input_text"]
            assert pair["preferred_output"] == [{"role": "assistant", "content": answer}]
            [rejected] = pair["non_preferred_output"]
            assert rejected["role"] == "assistant" and rejected["content"] in answers
            assert rejected["content"] != answer
    assert next(pairs, None) is None
