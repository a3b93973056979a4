"""The preference path's loader (`axolotl_multiturn/integration/rl.py`), collator and config checks, in process: exact ids
against the pair oracle through text lines and Arrow rows, every refusal naming its line, every left-out
pair counted."""

from __future__ import annotations

import json
import types
from pathlib import Path
from typing import Any

import pytest
import torch
from corpus import completion_oracle, render
from datasets import Dataset
from test_dpo import BEHAVIOUR_PAIRS, REASONING_PAIRS, STOPS, hosted, qwen3
from vocabularies import tokenizer

from axolotl_multiturn.engine.pairs import Shape, split, to_shape
from axolotl_multiturn.integration.dataset import RowError
from axolotl_multiturn.integration.options import ConfigError
from axolotl_multiturn.integration.plugin import prepare_config
from axolotl_multiturn.integration.rl import PairColumn, check_config, label_dataset
from axolotl_multiturn.integration.trainer import ExactPairCollator, ExactPairsDPOTrainer, tokenized_row

pytestmark = pytest.mark.axolotl
SECTIONS = ("datasets", "test_datasets")
OURS = {"path": "pairs.jsonl", "type": "axolotl_multiturn.chat"}


def lines_of(pairs: list[dict], blank_after: int | None = None) -> Dataset:
    """A JSONL file as the plugin has axolotl read it: text lines."""
    texts = [json.dumps(p) for p in pairs]
    if blank_after is not None:
        texts.insert(blank_after, "")
    return Dataset.from_dict({"text": texts})


def labelled(raw: Dataset, sequence_len: int = 256, **options: Any) -> tuple[Dataset, Any]:
    return label_dataset(tokenizer("chatml"), {"sequence_len": sequence_len}, {**OURS, **options}, raw)


def test_text_lines_and_arrow_rows_give_the_oracle_ids() -> None:
    """Hosted lines read as text, and the same pairs in TRL's shape through Arrow (`Dataset.from_list`: keys
    unified, nulls filled), give the oracle's prompt and completion ids, every completion token trained."""
    tok = tokenizer("chatml")
    trl_rows = [to_shape(split(p, Shape.HOSTED)[0], Shape.TRL) for p in BEHAVIOUR_PAIRS]
    from_lines, summary = labelled(lines_of(BEHAVIOUR_PAIRS, blank_after=2))
    from_arrow, _ = labelled(Dataset.from_list(trl_rows))
    assert from_lines.to_dict() | {"source": None} == from_arrow.to_dict() | {"source": None}
    assert from_lines["source"] == [0, 1, 3, 4]  # the blank line is line 3 (index 2), counted apart
    assert summary.outcomes[next(o for o in summary.outcomes if o.value == "blank")] == 1
    for row, line in zip(from_lines, BEHAVIOUR_PAIRS):
        prompt, chosen, rejected, tools = hosted(line)
        assert row[PairColumn.PROMPT_IDS.value] == tok(render(tok, prompt, tools, True), add_special_tokens=False)[
            "input_ids"]
        for output, ids, mask in ((chosen, PairColumn.CHOSEN_IDS, PairColumn.CHOSEN_MASK),
                                  (rejected, PairColumn.REJECTED_IDS, PairColumn.REJECTED_MASK)):
            assert row[ids.value] == completion_oracle(tok, prompt, output, tools, STOPS)[1]
            assert row[mask.value] == [1] * len(row[ids.value])


def test_pairs_longer_than_sequence_len_are_dropped_and_counted_or_stop_with_their_line() -> None:
    raw = lines_of(BEHAVIOUR_PAIRS)
    lengths = [len(r["prompt_ids"]) + max(len(r["chosen_ids"]), len(r["rejected_ids"])) for r in labelled(raw)[0]]
    limit = sorted(lengths)[1]  # the two shortest fit
    kept, summary = labelled(raw, sequence_len=limit)
    assert len(kept) == sum(n <= limit for n in lengths) == 2
    assert f"2 pairs longer than sequence_len ({limit}) dropped" in "\n".join(summary.lines())
    first = next(i for i, n in enumerate(lengths) if n > limit)
    with pytest.raises(RowError, match=rf"pairs.jsonl line {first + 1}: the prompt and its longer completion are "
                                       rf"{lengths[first]} tokens, over sequence_len \({limit}\)"):
        labelled(raw, sequence_len=limit, overflow="error")
    with pytest.raises(ConfigError, match="overflow: truncate would cut a completion before its stop token"):
        labelled(raw, overflow="truncate")
    with pytest.raises(RowError, match="no pairs left to train on"):
        labelled(raw, sequence_len=8)


def test_bad_lines_are_named() -> None:
    bad = {**BEHAVIOUR_PAIRS[0], "preferred_output": [{"role": "user", "content": "Blue."}]}
    with pytest.raises(RowError, match=r"pairs.jsonl line 2:/preferred_output: MT401 an output must be exactly one "
                                       r"assistant message .* Run `check-chat-jsonl FILE`"):
        labelled(lines_of([BEHAVIOUR_PAIRS[0], bad]))
    with pytest.raises(RowError, match=r"pairs.jsonl line 2: MT002 invalid JSON"):
        labelled(Dataset.from_dict({"text": [json.dumps(BEHAVIOUR_PAIRS[0]), "{"]}))
    with pytest.raises(RowError, match=r"pairs.jsonl line 1: not a preference pair"):
        labelled(lines_of([{"messages": [{"role": "user", "content": "Hi"}]}]))
    with pytest.raises(ConfigError, match="masking: boilerplate trains prompt text"):
        labelled(lines_of(BEHAVIOUR_PAIRS), masking="boilerplate")


def test_a_pair_that_cannot_be_labelled_exactly_is_named_or_skipped_and_counted() -> None:
    """Qwen 3 (TRL's template) with `reasoning: mask`, a trace ending in "." (Qwen2 merges ".\\n" with the
    markup after it): refused naming its line, or with on_unlabelable: skip left out and counted."""
    template = qwen3()
    merged = json.loads(json.dumps(REASONING_PAIRS[0]))
    merged["preferred_output"][0]["reasoning_content"] += "."
    raw = lines_of([REASONING_PAIRS[1], merged])
    cfg = {"sequence_len": 256, "chat_template": "jinja", "chat_template_jinja": template}
    with pytest.raises(RowError, match=r"pairs.jsonl line 2: token \d+ \(id \d+\) merges message 4 \(assistant\) "
                                       r"reasoning and message 4 \(assistant\) markup"):
        label_dataset(tokenizer("chatml"), cfg, {**OURS, "reasoning": "mask"}, raw)
    kept, summary = label_dataset(tokenizer("chatml"), cfg, {**OURS, "reasoning": "mask", "on_unlabelable": "skip"},
                                  raw)
    assert kept["source"] == [0]
    assert "1 pairs skipped (on_unlabelable: skip), e.g. pairs.jsonl line 2: token" in "\n".join(summary.lines())


@pytest.mark.parametrize(("cfg", "message"), [
    ({"rl": "kto", "datasets": [OURS]}, "rl: kto: type axolotl_multiturn.chat trains prompt/chosen/rejected pairs, "
                                        "with rl: dpo, ipo, orpo, simpo; kto does not train such pairs"),
    ({"rl": "grpo", "datasets": [OURS]}, "rl: grpo: .*grpo does not train such pairs"),
    ({"rl": "simpo", "datasets": [OURS]}, "rl: simpo: set simpo_gamma"),
    ({"rl": "dpo", "datasets": [OURS, {"path": "x.jsonl", "type": "chatml.intel"}]},
     r"datasets\[1\]: with rl: dpo, every dataset must be of type axolotl_multiturn.chat"),
    ({"rl": "dpo", "datasets": [OURS], "trainer_cls": "my.Trainer"},
     "trainer_cls: my.Trainer: exact pairs with rl: dpo need axolotl_multiturn.integration.trainer.ExactPairsDPOTrainer"),
])
def test_what_cannot_be_trained_exactly_is_a_config_error(cfg: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_config(cfg, SECTIONS)


@pytest.mark.parametrize(("rl", "trainer"), [("dpo", "ExactPairsDPOTrainer"), ("ipo", "ExactPairsDPOTrainer"),
                                             ("orpo", "ExactPairsORPOTrainer"), ("simpo", "ExactPairsCPOTrainer")])
def test_the_plugin_names_the_trainer_only_for_pairs_of_our_type(rl: str, trainer: str) -> None:
    cfg = {"rl": rl, "datasets": [dict(OURS)], "simpo_gamma": 0.5}
    prepare_config(cfg)
    assert cfg["trainer_cls"] == f"axolotl_multiturn.integration.trainer.{trainer}"
    sft = {"datasets": [dict(OURS)]}
    prepare_config(sft)
    assert "trainer_cls" not in sft and not check_config({"rl": "dpo", "datasets": [{"path": "x"}]}, SECTIONS)


def test_orpo_and_cpo_rows_label_exactly_the_marked_tokens() -> None:
    """The layout of TRL's ORPO/CPO `tokenize_row`, from the ids: nothing added, labels -100 off the mask."""
    row = tokenized_row({"prompt_ids": [5, 6], "chosen_ids": [8, 9, 2], "rejected_ids": [10, 2],
                         "chosen_mask": [0, 1, 1], "rejected_mask": [1, 1], "source": 0})
    assert row == {"prompt_input_ids": [5, 6], "prompt_attention_mask": [1, 1],
                   "chosen_input_ids": [5, 6, 8, 9, 2], "chosen_attention_mask": [1] * 5,
                   "chosen_labels": [-100, -100, -100, 9, 2],
                   "rejected_input_ids": [5, 6, 10, 2], "rejected_attention_mask": [1] * 4,
                   "rejected_labels": [-100, -100, 10, 2]}


def test_the_collator_trains_exactly_the_marked_tokens() -> None:
    """TRL's batch layout (chosen rows, then rejected rows; right padding), its completion mask from ours."""
    examples = [
        {"prompt_ids": [5, 6, 7], "chosen_ids": [8, 9], "rejected_ids": [10], "chosen_mask": [0, 1],
         "rejected_mask": [1], "source": 0},
        {"prompt_ids": [5], "chosen_ids": [8, 9, 11, 12], "rejected_ids": [13, 14], "chosen_mask": [1, 0, 0, 1],
         "rejected_mask": [1, 1], "source": 1},
    ]
    batch = ExactPairCollator(pad_token_id=0, pad_to_multiple_of=8)(examples)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9, 0, 0, 0], [5, 8, 9, 11, 12, 0, 0, 0],
                                           [5, 6, 7, 10, 0, 0, 0, 0], [5, 13, 14, 0, 0, 0, 0, 0]]
    assert batch["completion_mask"].tolist() == [[0, 0, 0, 0, 1, 0, 0, 0], [0, 1, 0, 0, 1, 0, 0, 0],
                                                 [0, 0, 0, 1, 0, 0, 0, 0], [0, 1, 1, 0, 0, 0, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1] * 5 + [0] * 3, [1] * 5 + [0] * 3, [1] * 4 + [0] * 4,
                                                [1] * 3 + [0] * 5]
    assert batch["completion_mask"].dtype == torch.long


def test_the_trainer_refuses_a_dataset_of_strings() -> None:
    """Handed prompt/chosen/rejected strings (axolotl's own loader), the trainer says what it needs
    instead of tokenizing them its own way."""
    strings = Dataset.from_dict({"prompt": ["a"], "chosen": ["b"], "rejected": ["c"]})
    with pytest.raises(ValueError, match="train dataset: no prompt_ids, chosen_ids, rejected_ids, chosen_mask, "
                                         "rejected_mask, source columns"):
        ExactPairsDPOTrainer._prepare_dataset(types.SimpleNamespace(), strings, None, None, "train")


def test_orpo_and_cpo_refuse_an_encoder_decoder_model() -> None:
    """Exact pairs are one sequence each (prompt + completion): where TRL's ORPO and CPO trainers would lay
    out an encoder-decoder model's rows their own way, the model is refused by name."""
    from axolotl_multiturn.integration.trainer import ExactPairsCPOTrainer, ExactPairsORPOTrainer

    row = {"prompt_ids": [5], "chosen_ids": [8], "rejected_ids": [9], "chosen_mask": [1], "rejected_mask": [1],
           "source": 0}
    for trainer in (ExactPairsORPOTrainer, ExactPairsCPOTrainer):
        instance = trainer.__new__(trainer)  # the attribute TRL's __init__ sets from the model's config
        instance.is_encoder_decoder = True
        with pytest.raises(ValueError, match=f"{trainer.__name__}: exact pairs train decoder-only models .* this "
                                             "model is an encoder-decoder"):
            instance.tokenize_row(row)
        instance.is_encoder_decoder = False
        assert instance.tokenize_row(row) == tokenized_row(row)


def test_axolotl_loaders_give_the_same_pairs(tmp_path) -> None:
    """The same pairs (answers, multi-turn histories, reasoning, a tool call: keys differ across lines)
    through axolotl's dataset loader as the plugin has it read a local JSONL (text lines), as parquet and
    as datasets' JSON loader (Arrow: keys unified and null-filled), in TRL's shape: identical columns."""
    from axolotl.utils.dict import DictDefault

    from axolotl_multiturn.integration.rl import load_split

    pairs = [to_shape(split(p, Shape.HOSTED)[0], Shape.TRL) for p in [*BEHAVIOUR_PAIRS, *REASONING_PAIRS]]
    text = "".join(json.dumps(p) + "\n" for p in pairs)
    (tmp_path / "lines.jsonl").write_text(text)
    (tmp_path / "arrow.jsonl").write_text(text)
    # (`Dataset.from_list` takes its columns from the first row alone: it would drop `tools`)
    Dataset.from_json(str(tmp_path / "arrow.jsonl")).to_parquet(str(tmp_path / "pairs.parquet"))
    cfg = {"sequence_len": 512, "chat_template": "jinja", "chat_template_jinja": qwen3()}
    entries = {"lines": {"path": str(tmp_path / "lines.jsonl"), "ds_type": "text"},
               "json": {"path": str(tmp_path / "arrow.jsonl")},
               "parquet": {"path": str(tmp_path / "pairs.parquet"), "ds_type": "parquet"}}
    got = {name: load_split(cfg, tokenizer("chatml"), [DictDefault({**OURS, **entry})])[0][0].to_dict()
           for name, entry in entries.items()}
    assert got["lines"]["source"] == list(range(6))
    assert got["lines"] == got["json"] == got["parquet"]


def test_rl_without_the_plugin_says_to_add_it(caplog: pytest.LogCaptureFixture) -> None:
    """axolotl's own RL loader, handed our type when the config lists no plugin, logs what to add (then
    raises its own error pointing at that warning)."""
    import logging

    from axolotl.prompt_strategies.dpo import load as load_dpo
    from axolotl.utils.dict import DictDefault

    caplog.set_level(logging.WARNING)
    logging.getLogger("axolotl.prompt_strategies.base").addHandler(caplog.handler)
    assert load_dpo("axolotl_multiturn.chat", DictDefault({"rl": "dpo", "datasets": [OURS]}), dataset_idx=0) is None
    assert ("type axolotl_multiturn.chat with rl: dpo needs plugins: [axolotl_multiturn.MultiTurnPlugin] in the "
            "config") in caplog.text


def plugin_load(model: Any, train: Any, test: Any = None, **options: Any) -> tuple[Any, Any, list]:
    """(train pairs, test pairs, summaries) through the plugin's `load_datasets` hook on JSONL files."""
    from axolotl.utils.dict import DictDefault

    from axolotl_multiturn.integration.plugin import MultiTurnPlugin

    cfg = DictDefault({"rl": "dpo", "base_model": str(model), "tokenizer_config": str(model), "sequence_len": 256,
                       "micro_batch_size": 1, "num_epochs": 1, "batch_size": 1,
                       "dataset_prepared_path": str(train.parent / "prepared"),
                       "datasets": [{**OURS, "path": str(train), "ds_type": "text"}],
                       **({"test_datasets": [{**OURS, "path": str(test), "ds_type": "text", "split": "train"}]}
                          if test else {}),
                       **options})
    plugin = MultiTurnPlugin()
    plugin.register(cfg)
    meta = plugin.load_datasets(cfg)
    return meta.train_dataset, meta.eval_dataset, plugin.pair_summaries


def test_exact_duplicates_are_left_out_and_counted_across_the_splits(tmp_path, tiny_model) -> None:
    """dataset_exact_deduplication through the plugin's `load_datasets` hook: a training pair repeated as
    written, and once more in TRL's shape (other JSON, the same tokens), and a test pair that repeats a
    training pair are left out and counted; without the option every pair is kept (the prepared copies read
    back, deduplicated after). The datasets are merged as axolotl merges its own (shuffle_merged_datasets
    with seed)."""
    from datasets import concatenate_datasets

    from axolotl_multiturn.integration.rl import PairOutcome

    p0, p1, p2, p3 = BEHAVIOUR_PAIRS
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    train.write_text("".join(json.dumps(p) + "\n" for p in
                             [p0, p1, p0, to_shape(split(p1, Shape.HOSTED)[0], Shape.TRL), p2]))
    test.write_text(json.dumps(p1) + "\n" + json.dumps(p3) + "\n")

    every, _, (summary, _) = plugin_load(tiny_model, train, test, shuffle_merged_datasets=False)
    assert every["source"] == [0, 1, 2, 3, 4] and summary.outcomes[PairOutcome.DUPLICATE] == 0
    assert every[0] | {"source": 2} == every[2] and every[1] | {"source": 3} == every[3]  # token for token
    train_set, eval_set, (train_summary, test_summary) = plugin_load(
        tiny_model, train, test, dataset_exact_deduplication=True, shuffle_merged_datasets=False)
    assert train_set["source"] == [0, 1, 4] and eval_set["source"] == [1]
    assert train_summary.outcomes[PairOutcome.DUPLICATE] == 2 and test_summary.outcomes[PairOutcome.DUPLICATE] == 1
    assert (f"{train}: 2 pairs left out as duplicates of pairs before them (dataset_exact_deduplication: the same "
            "prompt and completions, token for token)") in train_summary.lines()
    kept = [every[i] for i in (0, 1, 4)]
    tokens = (sum(len(r["prompt_ids"]) for r in kept), sum(len(r["chosen_ids"]) + len(r["rejected_ids"]) for r in kept))
    assert train_summary.lines()[0] == (f"{train}: 3 pairs kept of 5; {tokens[0]:,} prompt tokens, {tokens[1]:,} "
                                        f"completion tokens, {tokens[1]:,} trained")
    assert train_summary.metrics()["multiturn/pairs/duplicate"] == 2.0
    shuffled, _, _ = plugin_load(tiny_model, train, test, shuffle_merged_datasets=True, seed=7)
    assert shuffled["source"] == concatenate_datasets([every]).shuffle(seed=7)["source"] != every["source"]


def test_pairs_are_kept_in_dataset_prepared_path_and_read_back_while_nothing_they_depend_on_changes(
        tmp_path, tiny_model, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first load labels and saves each entry's pairs with their summary; the next reads them back
    without labelling; a changed option, sequence_len or file labels again into a copy of its own;
    `axolotl preprocess` (is_preprocess) labels again; skip_prepare_dataset saves nothing."""
    from axolotl_multiturn.integration import rl

    labelled: list[str] = []
    label = rl.label_dataset
    monkeypatch.setattr(rl, "label_dataset", lambda tok, cfg, ds_cfg, raw: labelled.append("x") or label(
        tok, cfg, ds_cfg, raw))
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(p) + "\n" for p in BEHAVIOUR_PAIRS))
    prepared = tmp_path / "prepared"
    first, _, (summary,) = plugin_load(tiny_model, train)
    assert len(labelled) == 1 and len(list(prepared.glob("multiturn-pairs-*/multiturn-summary.json"))) == 1
    again, _, (recalled,) = plugin_load(tiny_model, train)
    assert len(labelled) == 1 and again.to_dict() == first.to_dict() and recalled == summary
    for changed in ({"sequence_len": 300}, {"multiturn": {"stop_tokens": ["<|im_end|>"]}}):
        plugin_load(tiny_model, train, **changed)
    assert len(labelled) == 3 and len(list(prepared.glob("multiturn-pairs-*"))) == 3
    train.write_text("".join(json.dumps(p) + "\n" for p in BEHAVIOUR_PAIRS[:3]))
    fewer, _, _ = plugin_load(tiny_model, train)
    assert len(labelled) == 4 and fewer["source"] == [0, 1, 2]
    stale = [folder / "stale" for folder in prepared.glob("multiturn-pairs-*")]
    for marker in stale:
        marker.touch()
    plugin_load(tiny_model, train, is_preprocess=True)
    assert len(labelled) == 5 and len(list(prepared.glob("multiturn-pairs-*"))) == 4
    assert sum(marker.exists() for marker in stale) == 3  # the copy preprocessing made replaced the one there
    plugin_load(tiny_model, train, skip_prepare_dataset=True, sequence_len=400)
    assert len(labelled) == 6 and len(list(prepared.iterdir())) == 4


def test_a_prepared_copy_is_not_read_back_by_changed_labelling_code(tmp_path, tiny_model,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The package version stays 0.1.0 across engine changes; the copy's key holds a digest of the engine's
    and rl.py's source instead, so an edited engine labels again into a copy of its own."""
    import shutil

    from axolotl_multiturn import engine
    from axolotl_multiturn.integration import rl

    labelled: list[str] = []
    label = rl.label_dataset
    monkeypatch.setattr(rl, "label_dataset", lambda tok, cfg, ds_cfg, raw: labelled.append("x") or label(
        tok, cfg, ds_cfg, raw))
    source = tmp_path / "engine"
    shutil.copytree(Path(engine.__file__).parent, source, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(rl, "LABELLING_SOURCES", (source, Path(rl.__file__)))
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(p) + "\n" for p in BEHAVIOUR_PAIRS))
    plugin_load(tiny_model, train)
    plugin_load(tiny_model, train)
    assert len(labelled) == 1
    with open(source / "label.py", "a") as edited:
        edited.write("\n# a change to the labelling pipeline\n")
    plugin_load(tiny_model, train)
    assert len(labelled) == 2 and len(list((tmp_path / "prepared").glob("multiturn-pairs-*"))) == 2
