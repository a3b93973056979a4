"""The axolotl adapter: the plugin's config handling, the strategy through axolotl's own loader, and the
dataset-level behaviour (auto decision, fingerprint, row errors, skips, multi-process)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml
from axolotl.prompt_strategies import load as axolotl_load
from axolotl.utils.data.shared import generate_dataset_hash_from_config
from axolotl.utils.dict import DictDefault
from chats import A, S, U, chat
from datasets import Dataset, IterableDataset
from vocabularies import tokenizer

from axolotl_multiturn.chat import ChatDatasetWrapper, RowError
from axolotl_multiturn.engine.masking import Mode
from axolotl_multiturn.integration.options import ConfigError

pytestmark = pytest.mark.axolotl
M = -100
HI = chat((U, "Hi"), (A, "Hello!"))
CHATML_IDS = [151644, 872, 198, 13048, 151645, 198, 151644, 77091, 198, 9707, 0, 151645, 198]


def write_config(tmp_path: Path, model: Path, **overrides) -> Path:
    cfg = {
        "base_model": str(model),
        "plugins": ["axolotl_multiturn.MultiTurnPlugin"],
        "datasets": [{"path": str(tmp_path / "train.jsonl"), "type": "axolotl_multiturn.chat"}],
        "sequence_len": 256, "micro_batch_size": 1, "num_epochs": 1, "learning_rate": 1e-4,
        "output_dir": str(tmp_path / "out"), **overrides,
    }
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def load_cfg(path: Path) -> DictDefault:
    from axolotl.cli.config import load_cfg as axolotl_load_cfg

    return axolotl_load_cfg(str(path))


def test_plugin_keeps_per_dataset_options_through_validation(tmp_path: Path, tiny_model: Path) -> None:
    path = write_config(tmp_path, tiny_model, multiturn={"masking": "auto", "last_turn_only": True},
                        datasets=[{"path": "a.jsonl", "type": "axolotl_multiturn.chat", "masking": "boilerplate"},
                                  {"path": "b.jsonl", "type": "axolotl_multiturn.chat"}])
    cfg = load_cfg(path)
    assert cfg.multiturn == {"masking": "auto", "last_turn_only": True}
    assert cfg.datasets[0].conversation == ('axolotl_multiturn:{"last_turn_only": true, '
                                            '"masking": "boilerplate"}')
    assert cfg.datasets[1].conversation == 'axolotl_multiturn:{"last_turn_only": true, "masking": "auto"}'
    assert "masking" not in cfg.datasets[0]


@pytest.mark.parametrize(("overrides", "message"), [
    ({"multiturn": {"maskin": "none"}}, r"multiturn\.maskin: unknown key; did you mean 'masking'\?"),
    ({"multiturn": {"masking": "all"}}, r"multiturn\.masking: 'all' is not one of none, instruction"),
    ({"datasets": [{"path": "a.jsonl", "type": "axolotl_multiturn.chat", "maskng": "none"}]},
     r"datasets\[0\]\.maskng: unknown key for type axolotl_multiturn\.chat; did you mean 'masking'\?"),
    ({"datasets": [{"path": "a.jsonl", "type": "axolotl_multiturn.chat", "masking": "nope"}]},
     r"datasets\[0\]\.masking: 'nope' is not one of"),
])
def test_config_mistakes_are_errors(tmp_path: Path, tiny_model: Path, overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_cfg(write_config(tmp_path, tiny_model, **overrides))


def test_prepared_dataset_hash_follows_the_masking(tmp_path: Path, tiny_model: Path) -> None:
    hashes = set()
    for masking in ("instruction", "boilerplate", "instruction"):
        cfg = load_cfg(write_config(tmp_path, tiny_model, multiturn={"masking": masking}))
        hashes.add(generate_dataset_hash_from_config(cfg, cfg.datasets, "tok"))
    assert len(hashes) == 2


@pytest.mark.parametrize(("cfg", "ds_cfg"), [
    ({"multiturn": {"masking": "instruction"}}, {"path": "x"}),
    ({}, {"path": "x", "masking": "instruction"}),
    ({"multiturn": {"masking": "none"}}, {"path": "x", "masking": "instruction"}),
])
def test_axolotl_loader_reads_options_without_the_plugin(cfg: dict, ds_cfg: dict) -> None:
    wrapper = axolotl_load("axolotl_multiturn.chat", tokenizer("chatml"), DictDefault(cfg), DictDefault(ds_cfg))
    assert isinstance(wrapper, ChatDatasetWrapper)
    out = wrapper.wrap_dataset(Dataset.from_list([{"messages": HI}]))
    assert out[0] == {"input_ids": CHATML_IDS, "attention_mask": [1] * 13,
                      "labels": [M, M, M, M, M, M, M, M, M, 9707, 0, 151645, M]}


def dataset(rows: int, system: str, answer: str) -> Dataset:
    return Dataset.from_list([{"messages": chat((S, system), (U, f"q{i}"), (A, answer))} for i in range(rows)])


def test_auto_decides_once_logs_and_enters_the_fingerprint(caplog: pytest.LogCaptureFixture) -> None:
    tok = tokenizer("chatml")
    long_prompt = dataset(20, "a long story " * 30, "short")
    short_prompt = dataset(20, "hi", "a much longer answer " * 30)
    caplog.set_level(logging.INFO, logger="axolotl_multiturn.chat")
    outputs = {}
    for name, data in (("long", long_prompt), ("short", short_prompt)):
        wrapper = axolotl_load("axolotl_multiturn.chat", tok, DictDefault({}), DictDefault({"path": name}))
        wrapped = wrapper.wrap_dataset(data)
        outputs[name] = (wrapper.strategy.mode, wrapped)
    assert outputs["long"][0] is Mode.BOILERPLATE and outputs["short"][0] is Mode.INSTRUCTION
    lines = [r.getMessage() for r in caplog.records if "masking auto" in r.getMessage()]
    assert lines[0].startswith("axolotl_multiturn: long: masking auto -> boilerplate (N=20 conversations, R=")
    assert lines[1].startswith("axolotl_multiturn: short: masking auto -> instruction (N=20 conversations, R=")
    forced = axolotl_load("axolotl_multiturn.chat", tok, DictDefault({"multiturn": {"masking": "instruction"}}),
                          DictDefault({"path": "long"})).wrap_dataset(long_prompt)
    assert forced._fingerprint != outputs["long"][1]._fingerprint


def test_bad_row_is_named_by_its_index() -> None:
    rows = [{"messages": HI}] * 3 + [{"messages": chat((U, "Hi"), (U, "again"))}]
    wrapper = axolotl_load("axolotl_multiturn.chat", tokenizer("chatml"),
                           DictDefault({"multiturn": {"masking": "instruction"}}), DictDefault({"path": "d.jsonl"}))
    with pytest.raises(RowError, match=r"^d\.jsonl row 3: MT203 got 'user' after 'user', expected 'assistant' "
                                       r"\(after an optional system message, user turns and assistant answers "
                                       r"alternate\) "
                                       r"at /messages/1/role; MT204 no assistant message"):
        wrapper.wrap_dataset(Dataset.from_list(rows))


CONTENT_DEPENDENT = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{% if 'X' in m.content %}!{% endif %}"
                     "{{ m.content }}<|im_end|>\n{% endfor %}")


def test_unlabelable_rows_error_by_default_and_skip_when_asked(caplog: pytest.LogCaptureFixture) -> None:
    rows = Dataset.from_list([{"messages": HI}, {"messages": chat((U, "X marks"), (A, "ok"))}, {"messages": HI}])
    cfg = {"chat_template_jinja": CONTENT_DEPENDENT, "multiturn": {"masking": "instruction"}}
    strict = axolotl_load("axolotl_multiturn.chat", tokenizer("chatml"), DictDefault(cfg), DictDefault({"path": "d"}))
    with pytest.raises(RowError, match=r"^d row 1: the chat template changes the text of message 0 \(user\)"):
        strict.wrap_dataset(rows)
    cfg["multiturn"]["on_unlabelable"] = "skip"
    lenient = axolotl_load("axolotl_multiturn.chat", tokenizer("chatml"), DictDefault(cfg), DictDefault({"path": "d"}))
    with caplog.at_level(logging.WARNING, logger="axolotl_multiturn.chat"):
        out = lenient.wrap_dataset(rows)
    assert len(out) == 2
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("d row 1 skipped: the chat template changes the text") for m in messages)
    assert any(m.startswith("axolotl_multiturn: d: skipped 1 of 3 rows") for m in messages)


def test_multiprocess_map_gives_the_same_rows() -> None:
    data = Dataset.from_list([{"messages": chat((U, f"question {i}"), (A, f"answer {i}"))} for i in range(40)])
    outs = []
    for procs in (None, 2):
        wrapper = axolotl_load("axolotl_multiturn.chat", tokenizer("chatml"),
                               DictDefault({"multiturn": {"masking": "boilerplate"}}), DictDefault({"path": "d"}))
        outs.append(wrapper.wrap_dataset(data, process_count=procs).to_list())
    assert outs[0] == outs[1] and len(outs[0]) == 40


def test_streaming_dataset_needs_an_explicit_mode() -> None:
    stream = IterableDataset.from_generator(lambda: iter([{"messages": HI}]))
    wrapper = axolotl_load("axolotl_multiturn.chat", tokenizer("chatml"), DictDefault({}), DictDefault({"path": "s"}))
    with pytest.raises(ConfigError, match="masking auto needs the whole dataset"):
        wrapper.wrap_dataset(stream)


def test_base_model_without_template_falls_back_to_chatml() -> None:
    tok = tokenizer("chatml")
    bare = tok.__class__(tokenizer_object=tok.backend_tokenizer, eos_token="<|im_end|>")
    assert bare.chat_template is None
    wrapper = axolotl_load("axolotl_multiturn.chat", bare, DictDefault({"multiturn": {"masking": "none"}}),
                           DictDefault({"path": "x"}))
    assert wrapper.wrap_dataset(Dataset.from_list([{"messages": HI}]))[0]["input_ids"] == CHATML_IDS


def test_template_needing_an_undefined_token_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"x: the chat template rejects this conversation: 'bos_token' is "
                                          r"undefined: the tokenizer does not define it"):
        axolotl_load("axolotl_multiturn.chat", tokenizer("chatml"),
                     DictDefault({"chat_template": "llama3"}), DictDefault({"path": "x"}))


def test_training_start_summary_is_the_preprocessing_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """The plugin's summary at training start is what preprocessing counted, saved beside the prepared
    dataset: no tokenizer call, no template render, and the numbers of the prepared rows themselves."""
    from types import SimpleNamespace

    from transformers import PreTrainedTokenizerBase

    from axolotl_multiturn.engine.encode import Encoder
    from axolotl_multiturn.integration.plugin import MultiTurnPlugin, prepare_config
    from axolotl_multiturn.reports import summary as summaries

    long = chat((S, "A story. " * 30), *[t for k in range(6) for t in ((U, f"Question {k}?"), (A, f"Answer {k}."))])
    rows = [HI, long, chat((U, "Again?"), (A, "Yes.")), long]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(__import__("json").dumps({"messages": r}) + "\n" for r in rows))
    raw_cfg = {"sequence_len": 160, "dataset_prepared_path": str(tmp_path / "prepared"),
               "multiturn": {"masking": "instruction"},
               "datasets": [{"path": str(data), "type": "axolotl_multiturn.chat"}]}
    prepare_config(raw_cfg)  # what the plugin's `register` does to the raw YAML
    cfg = DictDefault(raw_cfg)
    tok = tokenizer("chatml")
    wrapper = axolotl_load("axolotl_multiturn.chat", tok, cfg, cfg.datasets[0])
    prepared = wrapper.wrap_dataset(Dataset.from_dict({"text": data.read_text().splitlines()}))
    assert len(prepared) > len(rows)  # the long conversations were split into windows
    counted = wrapper.summary.lines()

    summaries._COUNTED.clear()  # a training run in another process: only the saved file remains
    calls: list[str] = []
    monkeypatch.setattr(Encoder, "encode", lambda *a, **k: calls.append("encode"))
    monkeypatch.setattr(PreTrainedTokenizerBase, "__call__", lambda *a, **k: calls.append("tokenize"))
    monkeypatch.setattr(PreTrainedTokenizerBase, "apply_chat_template", lambda *a, **k: calls.append("render"))
    trainer = SimpleNamespace(processing_class=tok, train_dataset=prepared)
    with caplog.at_level(logging.INFO, logger="axolotl_multiturn.integration.plugin"):
        callbacks = MultiTurnPlugin().add_callbacks_post_trainer(cfg, trainer)
    assert calls == [] and len(callbacks) == 1
    logged = [r.getMessage() for r in caplog.records if r.name == "axolotl_multiturn.integration.plugin"]
    assert logged == [f"axolotl_multiturn: {line}" for line in counted]
    tokens = sum(len(ids) for ids in prepared["input_ids"])
    trained = sum(sum(1 for label in labels if label != M) for labels in prepared["labels"])
    assert logged[0] == (f"axolotl_multiturn: {data}: 4 conversations, {tokens:,} tokens, {trained:,} trained "
                         f"({100 * trained / tokens:.1f}%), masking instruction")
    assert logged[2].startswith(f"axolotl_multiturn: {data}: 2 of 4 conversations longer than sequence_len=160 ")

    # a dataset prepared without a saved summary: the prepared rows' own totals, and why
    for saved in (tmp_path / "prepared").glob("axolotl_multiturn-*.summary.json"):
        saved.unlink()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="axolotl_multiturn.integration.plugin"):
        assert MultiTurnPlugin().add_callbacks_post_trainer(cfg, trainer) == []
    assert calls == []
    assert [r.getMessage() for r in caplog.records if r.name == "axolotl_multiturn.integration.plugin"] == [
        f"axolotl_multiturn: no summary was saved with the prepared dataset of {data} (prepared by another "
        f"version; delete the prepared dataset to count it again). The training set as prepared: "
        f"{len(prepared):,} rows, {tokens:,} tokens, {trained:,} trained ({100 * trained / tokens:.1f}%)"]


def sampling_keys() -> list[dict]:
    """`shards` on every supported axolotl; `weight` (a fraction) from 0.20 on."""
    from axolotl.utils.schemas.datasets import SFTDataset

    return [{"shards": 1}, *([{"weight": 0.99}] if "weight" in SFTDataset.model_fields else [])]


@pytest.mark.parametrize("sampled", sampling_keys(), ids=lambda keys: next(iter(keys)))
def test_a_sampled_file_names_rows_not_lines(tmp_path: Path, tiny_model: Path, sampled: dict) -> None:
    """axolotl shuffles and subsamples a dataset with `shards` or a fractional `weight` before the strategy
    sees it, so a row's index is no longer its line: the error must not name a line it cannot know."""
    from axolotl.loaders import load_tokenizer
    from axolotl.utils.data import prepare_datasets

    good = {"messages": HI}
    bad = {"messages": chat((U, "Hi"), (U, "again"))}
    (tmp_path / "train.jsonl").write_text("".join(__import__("json").dumps(r) + "\n" for r in
                                                  (good, bad, bad, bad, bad, bad)))
    key, value = next(iter(sampled.items()))
    cfg = load_cfg(write_config(tmp_path, tiny_model, multiturn={"masking": "instruction", "preflight": False},
                                dataset_prepared_path=str(tmp_path / "prepared"),
                                datasets=[{"path": str(tmp_path / "train.jsonl"), "type": "axolotl_multiturn.chat",
                                           **sampled}]))
    with pytest.raises(RowError, match=rf"^{tmp_path}/train\.jsonl row \d of the {key} {value} sample "
                                       rf"\(`check-chat-jsonl {tmp_path}/train\.jsonl` names lines\): MT203 "):
        prepare_datasets(cfg, load_tokenizer(cfg))


def test_a_template_no_row_can_be_labelled_with_is_refused_at_load_naming_it() -> None:
    """A template that rewrites every content (here upper-cased) is refused when the dataset type loads, not
    once per row: the config names the template and the reason."""
    from axolotl_multiturn.integration.options import ConfigError

    upper = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content | upper }}<|im_end|>\n{% endfor %}"
    with pytest.raises(ConfigError, match=r"^d: the chat template \(jinja\) cannot be labelled exactly even on a plain "
                                          r"two-message conversation: the chat template changes the text of message 0"):
        axolotl_load("axolotl_multiturn.chat", tokenizer("chatml"), DictDefault({"chat_template_jinja": upper}),
                     DictDefault({"path": "d"}))


def test_an_sft_entry_on_a_file_of_pairs_says_so_at_once(tmp_path: Path, tiny_model: Path) -> None:
    """The pairs are valid lines (the preflight lint passes them), so without this each row failed alone;
    now the config load stops, naming the file's first line, its shape and `rl:`."""
    from conftest import ROOT

    (tmp_path / "train.jsonl").write_text("\n" + (ROOT / "tests" / "examples" / "lint" / "good_preference.jsonl")
                                          .read_text())
    with pytest.raises(ConfigError) as error:
        load_cfg(write_config(tmp_path, tiny_model))
    assert str(error.value) == (
        f"{tmp_path / 'train.jsonl'}:2: this file holds preference pairs (hosted shape), but the config trains "
        "conversations: pairs are trained with `rl: dpo` (or ipo, orpo, simpo) at the top of the config; or "
        "point this entry at a file of conversations")
