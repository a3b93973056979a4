"""Conversations with images on three vision-language families (Gemma 3, LLaVA and, where torchvision imports,
Qwen2-VL: `vlms.py`), labelled by axolotl's own strategy loader and checked against an oracle that knows
nothing of the engine: the processor's own
`apply_chat_template` token ids. For assistant turn i, `P_i` (messages[:i] with the generation prompt) and
`F_i` (messages[:i+1]); the turn's generation is `F_i`'s ids after `P_i` through the first stop id (Gemma 3's
`<end_of_turn>`; LLaVA has none: its turn's text less the space after it). The row must be the processor's
ids for the whole conversation with its pixel values; instruction trains exactly the generations; no mode
trains an image token or the whitespace the processor wraps around one."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from axolotl.prompt_strategies import load as axolotl_load
from axolotl.utils.dict import DictDefault
from datasets import Dataset
from vlms import FAMILIES, data_url, torchvision_imports

from axolotl_multiturn.chat import RowError
from axolotl_multiturn.engine.vision import TOKEN, unpack
from axolotl_multiturn.engine.vocabulary import VISION_COLUMN

RED, BLUE, GREEN = (220, 20, 20), (20, 20, 220), (20, 160, 20)


def image(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def text(value: str) -> dict:
    return {"type": "text", "text": value}


#: Shapes the families render differently: an image before and after its text, two in one message, a message of
#: an image alone, a follow-up without one, a system message, an image in a later turn.
CONVERSATIONS = [
    {
        "messages": [
            {"role": "user", "content": [image(data_url(RED)), text("What colour is the square?")]},
            {"role": "assistant", "content": "Red."},
            {"role": "user", "content": "Is it a circle?"},
            {"role": "assistant", "content": "No, a square."},
        ]
    },
    {
        "messages": [
            {"role": "system", "content": "Answer in one word."},
            {
                "role": "user",
                "content": [
                    text("And these two?"),
                    image(data_url(BLUE, (30, 50))),
                    image(data_url(GREEN, shape="circle")),
                ],
            },
            {"role": "assistant", "content": "Blue, green."},
        ]
    },
    {
        "messages": [
            {"role": "user", "content": [image(data_url(GREEN))]},
            {"role": "assistant", "content": "A green square."},
            {"role": "user", "content": [text("Now this one:"), image(data_url(RED, shape="circle"))]},
            {"role": "assistant", "content": "A red circle."},
        ]
    },
]


def as_processor_reads(messages: list[dict]) -> list[dict]:
    """The messages as a processor's `apply_chat_template` takes them: images as PIL pictures."""
    from PIL import Image

    def part(p: dict) -> dict:
        if p["type"] != "image_url":
            return p
        raw = base64.b64decode(p["image_url"]["url"].split(",", 1)[1])
        return {"type": "image", "image": Image.open(io.BytesIO(raw)).convert("RGB")}

    return [
        {
            "role": m["role"],
            "content": [part(p) for p in m["content"]] if isinstance(m["content"], list) else [text(m["content"])],
        }
        for m in messages
    ]


def processor_ids(processor: Any, messages: list[dict], prompt: bool = False) -> list[int]:
    out = processor.apply_chat_template(
        as_processor_reads(messages), add_generation_prompt=prompt, tokenize=True, return_dict=True
    )
    return list(np.asarray(out["input_ids"]).ravel())


def image_ids(processor: Any) -> set[int]:
    """The ids of the vocabulary's image tokens and markers (`<image>`, `<start_of_image>`, `<|vision_end|>`...):
    by their names, not by the engine."""
    return {i for i, t in processor.tokenizer.added_tokens_decoder.items() if re.search("image|vision", t.content)}


def oracle(processor: Any, messages: list[dict]) -> tuple[list[int], list[int]]:
    """(the processor's ids of the conversation, instruction labels from prefix diffs)."""
    tok = processor.tokenizer
    full = processor_ids(processor, messages)
    labels = [-100] * len(full)
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prompt, own = processor_ids(processor, messages[:i], prompt=True), processor_ids(processor, messages[: i + 1])
        assert own[: len(prompt)] == prompt
        tail = own[len(prompt) :]
        stop = next((k for k, t in enumerate(tail) if t == tok.eos_token_id), None) if tok.eos_token else None
        if stop is not None and tok.eos_token != tok.pad_token:
            tail = tail[: stop + 1]
        else:  # no stop token: the turn's text, not the whitespace the template writes after it
            while tail and not tok.decode(tail[-1:]).strip():
                tail = tail[:-1]
        end = len(prompt) + len(tail)
        assert full[:end] == own[:end]  # the turn is in the row as in its own render (LLaVA's space after it
        labels[len(prompt) : end] = tail  # merges with the next turn's ` USER`: never part of the generation)
    return full, labels


def wrapped(processor: Any, ids: list[int]) -> set[int]:
    """Positions of image ids and of whitespace-only tokens right next to one: the processor's wrapping
    (Gemma 3's `\\n\\n`) or the template's (LLaVA's newline after `<image>`), or template text (LLaVA's space
    in `USER: `), which `none` may train."""
    specials = image_ids(processor)
    tok = processor.tokenizer
    out = {k for k, t in enumerate(ids) if t in specials}
    for k in sorted(out):
        for near in (k - 1, k + 1):
            if 0 <= near < len(ids) and near not in out and not tok.decode(ids[near : near + 1]).strip():
                out.add(near)
    return out


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request: pytest.FixtureRequest) -> tuple[str, Any]:
    if request.param == "qwen2_vl" and not torchvision_imports():
        pytest.skip(
            "Qwen2-VL's processor needs torchvision, which does not import beside this lane's torch "
            "(the 3.11 CPU wheel; docs/images.md)"
        )
    processor, _ = FAMILIES[request.param]()
    return request.param, processor


def strategy(processor: Any, masking: str) -> Any:
    cfg = DictDefault({"sequence_len": 2048, "multiturn": {"masking": masking}})
    return axolotl_load(
        "axolotl_multiturn.chat",
        processor.tokenizer,
        cfg,
        DictDefault({"path": "vision", "type": "axolotl_multiturn.chat"}),
        processor=processor,
    )


def rows(processor: Any, masking: str, conversations: list[dict]) -> dict[str, list]:
    """The rows axolotl's loader makes of Arrow rows (`Dataset.from_list`: keys unified, nulls filled; a column
    holds one type, so every content is a list of parts, as on the Hub)."""
    wrapper = strategy(processor, masking)
    parts = [
        {
            "messages": [
                {**m, "content": m["content"] if isinstance(m["content"], list) else [text(m["content"])]}
                for m in c["messages"]
            ]
        }
        for c in conversations
    ]
    return wrapper.wrap_dataset(Dataset.from_list(parts)).to_dict()


def test_instruction_trains_exactly_the_oracles_generations(family: tuple[str, Any]) -> None:
    name, processor = family
    out = rows(processor, "instruction", CONVERSATIONS)
    assert len(out["input_ids"]) == len(CONVERSATIONS)
    for conversation, ids, labels, packed in zip(CONVERSATIONS, out["input_ids"], out["labels"], out[VISION_COLUMN]):
        full, expected = oracle(processor, conversation["messages"])
        assert ids == full
        assert labels == expected
        theirs = processor.apply_chat_template(
            as_processor_reads(conversation["messages"]), tokenize=True, return_dict=True, return_tensors="np"
        )
        vision = unpack(packed)
        assert np.array_equal(vision["pixel_values"], theirs["pixel_values"])
        for key in [k for k in theirs if k.endswith("token_type_ids")]:  # Gemma 3's, Qwen2-VL's
            assert np.array_equal(vision[TOKEN + key], theirs[key][0])
        for key in [k for k in theirs if k.startswith("image_")]:  # Qwen2-VL's grid of each image
            assert np.array_equal(vision[key], theirs[key])


@pytest.mark.parametrize("masking", ["none", "boilerplate"])
def test_no_mode_trains_an_image(family: tuple[str, Any], masking: str) -> None:
    """`none` trains everything else; `boilerplate` every message's text."""
    _, processor = family
    out = rows(processor, masking, CONVERSATIONS)
    for ids, labels in zip(out["input_ids"], out["labels"]):
        images = [k for k, t in enumerate(ids) if t in image_ids(processor)]
        assert images and all(labels[k] == -100 for k in images)
        if masking == "none":
            assert set(images) <= {k for k, label in enumerate(labels) if label == -100} <= wrapped(processor, ids)
        assert [label for label in labels if label != -100] == [
            ids[k] for k, label in enumerate(labels) if label != -100
        ]


def test_a_model_without_a_processor_refuses_images_and_a_broken_image_is_named(family: tuple[str, Any]) -> None:
    _, processor = family
    cfg = DictDefault({"sequence_len": 2048})
    text_only = axolotl_load(
        "axolotl_multiturn.chat",
        processor.tokenizer,
        cfg,
        DictDefault({"path": "d.jsonl", "type": "axolotl_multiturn.chat"}),
    )
    with pytest.raises(RowError, match=r"^d\.jsonl row 0: MT123 an image, but the model takes text only"):
        text_only.wrap_dataset(
            Dataset.from_list(
                [{"messages": [CONVERSATIONS[0]["messages"][0], {"role": "assistant", "content": [text("Red.")]}]}]
            )
        )
    broken = json.loads(json.dumps(CONVERSATIONS[0]))
    broken["messages"][0]["content"][0] = image("data:image/png;base64," + base64.b64encode(b"not a png").decode())
    with pytest.raises(RowError, match=r"^vision row 0: image 1 cannot be read: cannot identify image file"):
        rows(processor, "instruction", [broken])


@pytest.fixture(scope="module")
def vlm_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each family's tiny model, built once a session (as `conftest.tiny_model`)."""
    from conftest import shared_dir
    from filelock import FileLock
    from vlms import build

    root, out = shared_dir(tmp_path_factory), {}
    for name in ["gemma3", "qwen2_vl" if torchvision_imports() else "llava"]:  # the two trained on this lane
        model = root / f"tiny-{name}"
        with FileLock(str(root / f"tiny-{name}.lock")):
            if not (model / "config.json").is_file():
                build(name, root / f"tiny-{name}.building").rename(model)
        out[name] = model
    return out


def train_config(tmp_path: Path, model: Path, data: Path, masking: str, **extra: Any) -> Path:
    cfg = {
        **extra,
        "base_model": str(model),
        "plugins": ["axolotl_multiturn.MultiTurnPlugin", "capture.CapturePlugin"],
        "multiturn": {"masking": masking},
        "datasets": [{"path": str(data), "type": "axolotl_multiturn.chat"}],
        "sequence_len": 256,
        "bf16": False,
        "fp16": False,
        "tf32": False,
        "micro_batch_size": 2,
        "gradient_accumulation_steps": 1,
        "num_epochs": 1,
        "learning_rate": 1e-3,
        "optimizer": "adamw_torch",
        "lr_scheduler": "constant",
        "logging_steps": 1,
        "save_strategy": "no",
        "output_dir": str(tmp_path / "out"),
        "dataset_prepared_path": str(tmp_path / "prepared"),
        "shuffle_merged_datasets": False,
    }
    path = tmp_path / "config.yml"
    path.write_text(json.dumps(cfg))  # YAML reads JSON
    return path


def test_axolotl_train_feeds_the_model_the_oracles_rows_and_pixels(
    tmp_path: Path, family: tuple[str, Any], vlm_models: dict[str, Path]
) -> None:
    """A local JSONL (an image as a file beside it, the others data URLs, a text-only conversation among them)
    trained by `axolotl train` on the family's tiny model: every captured row is the processor's ids with the
    oracle's labels, its pixel values (and Gemma 3's token types) the processor's, in row order."""
    from conftest import ROOT
    from test_end_to_end import run_axolotl
    from transformers import AutoProcessor

    name, _ = family
    if name == "llava" and torchvision_imports():  # two families a lane through axolotl train: time
        pytest.skip(
            "where Qwen2-VL runs it is the second family through axolotl train; LLaVA's rows are "
            "checked above on every lane, and through axolotl train on the 3.11 lane"
        )
    # the processor as the run loads it from the model's folder (with torchvision present, another image backend)
    processor = AutoProcessor.from_pretrained(vlm_models[name])
    (tmp_path / "img").mkdir()
    conversations = json.loads(json.dumps(CONVERSATIONS))
    url = conversations[0]["messages"][0]["content"][0]["image_url"]["url"]
    (tmp_path / "img" / "red.png").write_bytes(base64.b64decode(url.split(",", 1)[1]))
    conversations[0]["messages"][0]["content"][0]["image_url"]["url"] = "img/red.png"
    plain = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}
    data = tmp_path / "chats.jsonl"
    data.write_text("".join(json.dumps(c) + "\n" for c in [*conversations, plain]))
    batches = tmp_path / "batches.jsonl"
    # axolotl's own VLM setting, processor_type, on the second family: axolotl then loads the processor and
    # hands it to our dataset type; without it our type loads it
    extra = {} if name == "gemma3" else {"processor_type": "AutoProcessor"}
    run = run_axolotl(
        "train",
        train_config(tmp_path, vlm_models[name], data, "instruction", **extra),
        tmp_path,
        CAPTURE_BATCHES=str(batches),
        PYTHONPATH=str(ROOT / "tests"),
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    expected = {}
    for conversation in [*CONVERSATIONS, plain]:
        full, labels = oracle(processor, conversation["messages"])
        theirs = processor.apply_chat_template(
            as_processor_reads(conversation["messages"]), tokenize=True, return_dict=True, return_tensors="np"
        )
        expected[tuple(full)] = (labels, theirs.get("pixel_values"), theirs.get("token_type_ids"))
    seen = []
    for batch in map(json.loads, batches.read_text().splitlines()):
        pixels = iter(np.asarray(batch.get("pixel_values", []), dtype=np.float32))
        for k, (ids, attention) in enumerate(zip(batch["input_ids"], batch["attention_mask"])):
            n = sum(attention)
            assert attention == [1] * n + [0] * (len(ids) - n)
            labels, pixel_values, types = expected[tuple(ids[:n])]
            assert batch["labels"][k][:n] == labels and set(batch["labels"][k][n:]) <= {-100}
            for picture in pixel_values if pixel_values is not None else []:
                assert np.allclose(next(pixels), picture)
            if types is not None:
                assert batch["token_type_ids"][k][:n] == types[0].tolist()
            seen.append(tuple(ids[:n]))
        assert next(pixels, None) is None
    assert sorted(seen) == sorted(expected)


def test_the_preview_shows_each_image_as_one_marker_with_its_token_count(family: tuple[str, Any]) -> None:

    from axolotl_multiturn.reports.html import conversation
    from axolotl_multiturn.reports.preview import shown

    _, processor = family
    wrapper = strategy(processor, "instruction")
    raw = Dataset.from_list(
        [
            {
                "messages": [
                    {**m, "content": m["content"] if isinstance(m["content"], list) else [text(m["content"])]}
                    for m in c["messages"]
                ]
            }
            for c in CONVERSATIONS
        ]
    )
    wrapper.wrap_dataset(raw)
    for item, source in zip(shown(wrapper, raw, len(CONVERSATIONS)), CONVERSATIONS):
        pieces = item.tokens()
        markers = [p for p in pieces if p.cls == "image"]
        images = json.dumps(source).count('"type": "image_url"')
        assert [re.fullmatch(r"\[image (\d+): \d+ tokens\]", p.text)[1] for p in markers] == [
            str(n + 1) for n in range(images)
        ]
        ids = item.encoded.input_ids.tolist()
        counts = [int(re.search(r": (\d+) tokens", p.text)[1]) for p in markers]
        assert sum(counts) == int(item.encoded.image.sum()) <= len(wrapped(processor, ids))
        assert all(c >= 4 for c in counts) and not any(p.trained for p in markers)  # four image tokens each
        shown_text = "".join(p.text for p in pieces if p.cls != "image")
        assert all(
            part["text"] in shown_text
            for m in source["messages"]
            for part in (m["content"] if isinstance(m["content"], list) else [text(m["content"])])
            if "text" in part
        )
        assert conversation(pieces).count('class="tok masked image"') == images


def test_a_long_conversation_is_split_between_turns_each_window_the_processors_own_row(family: tuple[str, Any]) -> None:
    """`sequence_len` below the whole conversation: windows at turn boundaries, each the processor's ids and
    pixel values for its own messages (an image is whole in the one window that holds its message), each
    assistant turn trained in exactly one window, as the oracle labels it."""
    _, processor = family
    messages = CONVERSATIONS[2]["messages"]
    limit = max(len(processor_ids(processor, messages[:2])), len(processor_ids(processor, messages[2:]))) + 2
    assert limit < len(processor_ids(processor, messages))
    cfg = DictDefault({"sequence_len": limit, "multiturn": {"masking": "instruction"}})
    wrapper = axolotl_load(
        "axolotl_multiturn.chat",
        processor.tokenizer,
        cfg,
        DictDefault({"path": "vision", "type": "axolotl_multiturn.chat"}),
        processor=processor,
    )
    parts = [
        {**m, "content": m["content"] if isinstance(m["content"], list) else [text(m["content"])]} for m in messages
    ]
    out = wrapper.wrap_dataset(Dataset.from_list([{"messages": parts}])).to_dict()
    assert len(out["input_ids"]) == 2 and all(len(ids) <= limit for ids in out["input_ids"])
    trained = []
    for ids, labels, packed, window in zip(
        out["input_ids"], out["labels"], out[VISION_COLUMN], (messages[:2], messages[2:])
    ):
        full, expected = oracle(processor, window)
        assert ids == full and labels == expected
        theirs = processor.apply_chat_template(
            as_processor_reads(window), tokenize=True, return_dict=True, return_tensors="np"
        )
        assert np.array_equal(unpack(packed)["pixel_values"], theirs["pixel_values"])
        trained.append([t for t in labels if t != -100])
    assert all(trained)


#: docs/images.md's table: per family, axolotl's strategy, tokens it trains that `instruction` masks, and
#: generation tokens it masks, summed over CONVERSATIONS.
AXOLOTL_MULTIMODAL = {
    "gemma3": ("Gemma3ProcessingStrategy", 0, 0),
    "llava": ("ProcessingStrategy", 66, 0),
    "qwen2_vl": ("Qwen2VLProcessingStrategy", 0, 0),
}


def test_axolotls_multimodal_collator_on_the_same_rows(family: tuple[str, Any]) -> None:
    """axolotl's own multimodal path (its processing strategy and `MultiModalChatDataCollator`) on the same
    conversations and processor, against the same oracle: the numbers docs/images.md gives."""
    from axolotl.processing_strategies import get_processing_strategy
    from axolotl.utils.collators.mm_chat import MultiModalChatDataCollator

    name, processor = family
    chosen = get_processing_strategy(processor, processor.tokenizer.chat_template, name, model_type=name)
    collate = MultiModalChatDataCollator(processor.tokenizer, chosen)
    extra = missing = 0
    for conversation in CONVERSATIONS:
        full, expected = oracle(processor, conversation["messages"])
        batch = collate([{"messages": as_processor_reads(conversation["messages"])}])
        assert batch["input_ids"][0].tolist() == full
        theirs = batch["labels"][0].tolist()
        extra += sum(1 for a, b in zip(theirs, expected) if a != -100 and b == -100)
        missing += sum(1 for a, b in zip(theirs, expected) if a == -100 and b != -100)
    assert (type(chosen).__name__, extra, missing) == AXOLOTL_MULTIMODAL[name]
    page = (Path(__file__).parent.parent / "docs" / "images.md").read_text()
    assert f"`{type(chosen).__name__}`" in page and f"| yes | {extra} " in page


def test_special_token_text_in_a_message_stays_text_beside_images(family: tuple[str, Any]) -> None:
    """The processor would read `<|im_end|>` written in a user's text as Qwen2's control token; the row keeps it
    as the text it is (docs/exactness.md), every image token still the processor's."""
    _, processor = family
    forged = "Does <|im_end|> end a turn?"
    messages = [
        {"role": "user", "content": [image(data_url(RED)), text(forged)]},
        {"role": "assistant", "content": [text("Only for Gemma.")]},
    ]
    (ids,) = rows(processor, "instruction", [{"messages": messages}])["input_ids"]
    full = processor_ids(processor, messages)
    tok = processor.tokenizer
    control = tok.convert_tokens_to_ids("<|im_end|>")
    assert tok.decode(ids) == tok.decode(full) and ids != full
    assert [t for t in ids if t in image_ids(processor)] == [t for t in full if t in image_ids(processor)]
    assert ids.count(control) == full.count(control) - 1
