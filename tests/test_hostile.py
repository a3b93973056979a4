"""Hostile inputs through the training path: strings reach the template as written whatever the mix of types
across rows, errors name the right line, a dataset with nothing to train is one clear error, the overflow
counts agree between preprocessing and the preview, and random rows never escape as a stray exception."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from axolotl.utils.data.shared import load_dataset_with_config
from axolotl.utils.dict import DictDefault
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vocabularies import tokenizer

from axolotl_multiturn.chat import RowError, load
from axolotl_multiturn.integration.dataset import summarize
from axolotl_multiturn.integration.options import ConfigError
from axolotl_multiturn.integration.plugin import prepare_config

pytestmark = pytest.mark.axolotl
TRICKY = ["null", "2", "[1, 2]", "\"quoted\"", "{}", "true", " 3.5 "]


def write(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def through_axolotl(path: Path, **multiturn: Any) -> tuple[Any, Any, dict]:
    """The plugin's config step, axolotl's dataset loader, and our strategy: (wrapper, raw dataset, entry)."""
    cfg = {"multiturn": {"masking": "instruction", **multiturn},
           "datasets": [{"path": str(path), "type": "axolotl_multiturn.chat"}]}
    prepare_config(cfg)
    entry = cfg["datasets"][0]
    raw = load_dataset_with_config(DictDefault(entry), use_auth_token=False)
    return load(tokenizer("chatml"), DictDefault(cfg), DictDefault(entry)), raw, entry


def plain_mixed() -> list[dict]:
    """Contents as strings that look like JSON next to a list content: datasets' JSON loader infers a
    Json feature for `content` and decodes the strings."""
    rows = [{"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": text}]}
            for text in TRICKY]
    rows.append({"messages": [{"role": "user", "content": [{"type": "text", "text": "null"}]},
                              {"role": "assistant", "content": "{}"}]})
    return rows


def agent_mixed() -> list[dict]:
    """The same, with null contents and object and string arguments in tool calls."""
    rows = plain_mixed()
    rows.append({"messages": [
        {"role": "user", "content": "2"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"x": "null"}}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "[1, 2]"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c2", "type": "function", "function": {"name": "f", "arguments": "{\"x\": \"2\"}"}}]},
        {"role": "tool", "tool_call_id": "c2", "content": "\"quoted\""},
        {"role": "assistant", "content": "true"}]})
    return rows


@pytest.mark.parametrize("make", [plain_mixed, agent_mixed])
def test_every_string_reaches_the_template_as_written(tmp_path: Path, make: Any) -> None:
    rows = make()
    wrapper, raw, entry = through_axolotl(write(tmp_path / "mixed.jsonl", rows))
    assert entry["ds_type"] == "text"
    out = wrapper.wrap_dataset(raw)
    tok = tokenizer("chatml")
    expected = []
    for row in rows:
        messages = copy.deepcopy(row["messages"])
        for m in messages:
            if isinstance(m["content"], list):
                m["content"] = "\n".join(p["text"] for p in m["content"])
            if m["content"] is None:
                m["content"] = ""
            for c in m.get("tool_calls", []):
                if isinstance(c["function"]["arguments"], str):
                    c["function"]["arguments"] = json.loads(c["function"]["arguments"])
        expected.append(tok.apply_chat_template(messages, tokenize=True, return_dict=False))
    assert out["input_ids"] == expected
    texts = [tok.decode(ids) for ids in out["input_ids"]]
    for text, tricky in zip(texts, TRICKY):
        assert f"<|im_start|>user\n{tricky}<|im_end|>" in text


def test_datasets_json_loader_would_have_changed_them(tmp_path: Path) -> None:
    """The failure the text-line loading avoids (if datasets stops decoding, this test says so)."""
    path = write(tmp_path / "mixed.jsonl", plain_mixed())
    decoded = load_dataset_with_config(DictDefault({"path": str(path)}), use_auth_token=False)
    assert decoded[1]["messages"][0]["content"] == 2  # was "2"


def test_errors_name_the_source_line(tmp_path: Path) -> None:
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]}
    bad = {"messages": [{"role": "user", "content": "hi"}, {"role": "user", "content": "again"}]}
    wrapper, raw, _ = through_axolotl(write(tmp_path / "d.jsonl", [good, "", bad]), preflight=False)
    with pytest.raises(RowError, match=rf"^{tmp_path}/d\.jsonl line 3: MT203 got 'user' after 'user'"):
        wrapper.wrap_dataset(raw)


def test_preflight_stops_with_the_linters_findings(tmp_path: Path) -> None:
    rows = ['{"messages": [{"role": "user", "content": "a"}], "messages": []}',
            '{"messages": [{"role": "user", "content": "\\ud800"}, {"role": "assistant", "content": "b"}]}']
    path = write(tmp_path / "d.jsonl", rows)
    with pytest.raises(ConfigError) as error:
        through_axolotl(path)
    assert str(error.value).splitlines() == [
        f"{path}: 2 errors in the dataset (run `check-chat-jsonl {path}` for all; multiturn.preflight: false "
        "skips this check):",
        f"  {path}:1:50: MT006 key 'messages' appears twice in one object; a loader keeps one of them silently",
        f"  {path}:2:44: MT002 invalid JSON: no low surrogate in string"]


def test_an_empty_file_is_one_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path / "empty.jsonl", [])
    with pytest.raises(ConfigError, match=r"empty\.jsonl: the dataset file is empty \(MT005\)"):
        through_axolotl(path, preflight=False)
    blank = write(tmp_path / "blank.jsonl", ["", ""])
    with pytest.raises(ConfigError, match=r"blank\.jsonl:1:1: MT005 the file holds no conversation"):
        through_axolotl(blank)
    wrapper, raw, _ = through_axolotl(blank, preflight=False)
    with pytest.raises(RowError, match=r"blank\.jsonl: no rows left to train on: the dataset has no "
                                       r"conversations \(an empty file, or only blank lines\)"):
        wrapper.wrap_dataset(raw)


def test_every_row_dropped_is_one_clear_error(tmp_path: Path) -> None:
    rows = [{"messages": [{"role": "user", "content": "a long question " * 30},
                          {"role": "assistant", "content": "ok"}]}] * 2
    wrapper, raw, _ = through_axolotl(write(tmp_path / "d.jsonl", rows), overflow="drop")
    wrapper.strategy.sequence_len = 40
    with pytest.raises(RowError, match=r"d\.jsonl: no rows left to train on: 2 conversations, 2 dropped\. Raise "
                                       r"sequence_len or set multiturn\.overflow: split"):
        wrapper.wrap_dataset(raw)


@pytest.mark.parametrize(("policy", "line"), [
    ("split", "2 of 3 conversations longer than sequence_len=60 (overflow: split): 1 split into 1 windows, "
              "0 truncated, 1 dropped (rows 1); assistant turns lost: 2"),
    ("truncate", "2 of 3 conversations longer than sequence_len=60 (overflow: truncate): 0 split into 0 windows, "
                 "1 truncated, 1 dropped (rows 1); assistant turns lost: 2"),
    ("drop", "2 of 3 conversations longer than sequence_len=60 (overflow: drop): 0 split into 0 windows, "
             "0 truncated, 2 dropped (rows 0, 1); assistant turns lost: 3"),
])
def test_overflow_counts_are_the_rows_written_and_agree_with_the_preview(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, policy: str, line: str) -> None:
    """Row 0: a short first turn, then a turn too long to fit even alone; row 1: only a turn too long;
    row 2 fits."""
    long = "word " * 80
    rows = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"},
                          {"role": "user", "content": long}, {"role": "assistant", "content": "ok"}]},
            {"messages": [{"role": "user", "content": long}, {"role": "assistant", "content": "ok"}]},
            {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]}]
    wrapper, raw, _ = through_axolotl(write(tmp_path / "d.jsonl", rows), overflow=policy)
    wrapper.strategy.sequence_len = 60
    with caplog.at_level("WARNING", logger="axolotl_multiturn.chat"):
        out = wrapper.wrap_dataset(raw)
    assert all(len(ids) > 0 for ids in out["input_ids"])
    logged = [r.getMessage().split(": ", 2)[2] for r in caplog.records if "longer than" in r.getMessage()]
    assert logged == [line]
    summary = summarize(wrapper.strategy, raw)
    assert [entry.split(": ", 1)[1] for entry in summary.lines() if "longer than" in entry] == [line]
    assert summary.outcomes.windows + summary.outcomes.by_status.get("fits", 0) \
        + summary.outcomes.by_status.get("truncated", 0) == len(out)


# --- fuzzing the strategy ------------------------------------------------------------------------------

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
VALUE = st.one_of(TEXT, st.none(), st.integers(-2, 2), st.lists(st.fixed_dictionaries({"type": st.just("text"),
                                                                                       "text": TEXT}), max_size=2))
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant", "tool", "User", "bot"]), "content": VALUE},
    optional={"weight": st.sampled_from([0, 1, 2]), "tool_call_id": st.sampled_from(["c1", "c2"]),
              "tool_calls": st.lists(st.fixed_dictionaries({
                  "id": st.sampled_from(["c1", "c2"]), "type": st.just("function"),
                  "function": st.fixed_dictionaries({"name": st.sampled_from(["f", ""]),
                                                     "arguments": st.sampled_from(["{}", "{\"a\": \"1\"}", "[",
                                                                                   "{\"a\": null}"])})}),
                  max_size=2)})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.fixed_dictionaries({"messages": st.lists(MESSAGE, max_size=5)}), min_size=1, max_size=4))
def test_random_rows_give_exact_labels_or_name_their_row(rows: list[dict]) -> None:
    """A valid row gives `apply_chat_template`'s ids with labels -100 or the id; an invalid one raises a
    RowError naming its own index and a rule code; no other exception escapes."""
    from axolotl_multiturn.engine.validate import check_conversation

    tok = tokenizer("chatml")
    strategy = load(tok, {"multiturn": {"masking": "boilerplate", "on_unlabelable": "error"}},
                    {"path": "fuzz"}).strategy
    bad = [i for i, row in enumerate(rows) if check_conversation(row)]
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    try:
        labelled = list(strategy.labelled({"text": lines}, list(range(len(rows)))))
    except RowError as error:
        message = str(error)
        assert bad or "merges" in message or "rejects" in message, message
        if bad:
            assert message.startswith(f"fuzz line {bad[0] + 1}: MT"), message
        return
    assert not bad
    for row in labelled:
        if row.item is None:
            continue
        ids = row.item.input_ids.tolist()
        assert all(label in (-100, i) for i, label in zip(ids, row.labels.tolist()))
        assert tok.decode(ids) == row.item.rendered.text
