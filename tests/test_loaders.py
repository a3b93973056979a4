"""Loader-independent input: the same conversations give the same rows whatever loaded them.

The paths a dataset takes into the strategy: a local JSONL file (the plugin has axolotl read it as text
lines), the same file through datasets' JSON loader (`ds_type: json`; Json values where a column's types
vary), a parquet file (the Hub serves datasets as parquet; Arrow structs), and an in-memory
`Dataset.from_list` (Arrow structs). Arrow unifies struct types across rows and across the tools of one row
and fills what a row lacks with null; those nulls must never reach the template. Runs on both datasets
versions the supported axolotl range brings (4.8 with axolotl 0.19, 5.0 with 0.21).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from axolotl.utils.data.shared import load_dataset_with_config
from axolotl.utils.dict import DictDefault
from datasets import Dataset
from vocabularies import tokenizer

from axolotl_multiturn.chat import load
from axolotl_multiturn.integration.plugin import prepare_config

pytestmark = pytest.mark.axolotl
TEMPLATE = "qwen3"  # renders the tools list into the system prompt with tojson, and tool calls and reasoning


def tool(name: str, **properties: str) -> dict[str, Any]:
    return {"type": "function", "function": {
        "name": name, "description": f"{name} tool",
        "parameters": {"type": "object", "properties": {k: {"type": t} for k, t in properties.items()},
                       "required": list(properties)}}}


def call(id_: str, name: str, **arguments: Any) -> dict[str, Any]:
    return {"id": id_, "type": "function", "function": {"name": name, "arguments": arguments}}


WEATHER, SEARCH = tool("get_weather", city="string"), tool("search_web", query="string", limit="integer")
ROWS: list[dict[str, Any]] = [
    {"messages": [{"role": "system", "content": "You can use tools."},
                  {"role": "user", "content": "Weather in Zürich?"},
                  {"role": "assistant", "content": None, "tool_calls": [call("c1", "get_weather", city="Zürich")]},
                  {"role": "tool", "tool_call_id": "c1", "content": "Sunny, 21 C"},
                  {"role": "assistant", "content": "Sunny and 21 C in Zürich."}],
     "tools": [WEATHER, SEARCH]},
    {"messages": [{"role": "user", "content": "Find the paper."},
                  {"role": "assistant", "content": "Searching.",
                   "tool_calls": [call("c2", "search_web", query="instruction modelling", limit=3)]},
                  {"role": "tool", "tool_call_id": "c2", "content": "arXiv 2405.14394"},
                  {"role": "assistant", "content": "It is arXiv 2405.14394.", "weight": 1}],
     "tools": [SEARCH]},
    {"messages": [{"role": "user", "content": "Hi"},
                  {"role": "assistant", "content": "Hello!", "weight": 0},
                  {"role": "user", "content": "What is 2 + 2?"},
                  {"role": "assistant", "content": "4.", "reasoning_content": "Two plus two is four."}]},
]


def through_axolotl(entry: dict[str, Any]) -> Any:
    """The plugin's config step, axolotl's dataset loader and our strategy, as `axolotl preprocess` runs them."""
    cfg = {"chat_template": TEMPLATE, "multiturn": {"masking": "instruction"},
           "datasets": [{**entry, "type": "axolotl_multiturn.chat"}]}
    prepare_config(cfg)
    entry = cfg["datasets"][0]
    raw = load_dataset_with_config(DictDefault(entry), use_auth_token=False)
    return load(tokenizer(TEMPLATE), DictDefault(cfg), DictDefault(entry)).wrap_dataset(raw)


def rows_of(dataset: Any) -> list[tuple[list[int], list[int]]]:
    return list(zip(dataset["input_ids"], dataset["labels"]))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("loaders")
    jsonl = folder / "chats.jsonl"
    jsonl.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS), encoding="utf-8")
    parquet = folder / "chats.parquet"
    Dataset.from_list(ROWS).to_parquet(str(parquet))
    return {"jsonl": jsonl, "parquet": parquet}


@pytest.fixture(scope="module")
def text_rows(files: dict[str, Path]) -> list[tuple[list[int], list[int]]]:
    return rows_of(through_axolotl({"path": str(files["jsonl"])}))


def test_jsonl_lines_render_what_the_user_wrote(text_rows: list) -> None:
    """The reference path against the template itself: each conversation's whole render by
    `apply_chat_template` with the user's tools (arguments as objects, the transformers convention) is a
    row, in order (qwen3 renders history differently, so the rows between them train earlier turns in
    their inference context: `parity`)."""
    tok = tokenizer(TEMPLATE)
    expected = []
    for row in ROWS:
        messages = [{**m, "content": m["content"] or ""} for m in row["messages"]]
        expected.append(tok.apply_chat_template(messages, tools=row.get("tools"), tokenize=True, return_dict=False))
    whole = [ids for ids, _ in text_rows if ids in expected]
    assert whole == expected and len(text_rows) == 5


def test_arrow_structs_invent_nulls_the_template_must_not_see(files: dict[str, Path]) -> None:
    """What the fix is for (if datasets stops unifying structs, this test says so)."""
    arrow = Dataset.from_list(ROWS)
    assert arrow[0]["tools"][0]["function"]["parameters"]["properties"]["query"] is None
    assert arrow[1]["tools"][0]["function"]["parameters"]["properties"]["city"] is None
    assert arrow[0]["messages"][0]["tool_calls"] is None


@pytest.mark.parametrize("path", ["json loader", "parquet", "in-memory"])
def test_every_loader_gives_the_same_rows(files: dict[str, Path], text_rows: list, path: str) -> None:
    if path == "json loader":
        out = through_axolotl({"path": str(files["jsonl"]), "ds_type": "json"})
    elif path == "parquet":
        out = through_axolotl({"path": str(files["parquet"])})
    else:
        cfg = DictDefault({"chat_template": TEMPLATE, "multiturn": {"masking": "instruction"}})
        out = load(tokenizer(TEMPLATE), cfg, DictDefault({"path": "memory"})).wrap_dataset(Dataset.from_list(ROWS))
    assert rows_of(out) == text_rows
