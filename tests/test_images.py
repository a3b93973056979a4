"""Image parts in user messages (issue 31, its data slice): the schema and the default lint accept them as the
hosted API writes them (base64 data URLs), as local files and as http(s) URLs, with the schema's limits;
a text-only model's training refuses them by name (the vision path: test_vision.py)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from axolotl.prompt_strategies import load as axolotl_load
from axolotl.utils.dict import DictDefault
from datasets import Dataset
from vocabularies import tokenizer

from axolotl_multiturn import schemas
from axolotl_multiturn.chat import RowError
from axolotl_multiturn.engine.images import limits
from axolotl_multiturn.engine.validate import InvalidConversation, parse_conversation
from axolotl_multiturn.hooks.check_chat_jsonl import main
from axolotl_multiturn.lint.rules import RULES


def png(colour: str) -> bytes:
    """A 4x4 PNG of one colour, drawn with PIL."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (4, 4), colour).save(out, format="PNG")
    return out.getvalue()


def image(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def line(*user_parts: dict, answer: object = "Red.") -> str:
    return json.dumps({"messages": [{"role": "user", "content": [{"type": "text", "text": "What colour?"},
                                                                  *user_parts]},
                                    {"role": "assistant", "content": answer}]}) + "\n"


def test_the_limits_are_the_schemas_and_the_rules_say_them() -> None:
    stated = schemas.load(schemas.CONVERSATION)["$defs"]["image_part"]["x-limits"]
    assert (limits().max_bytes, limits().max_per_conversation) == (stated["max_bytes"], stated["max_per_conversation"])
    assert limits().media_types == ("image/jpeg", "image/png", "image/webp")
    assert f"larger than {limits().max_bytes // 2**20} MB" in RULES["MT121"].summary
    assert f"more than {limits().max_per_conversation} images" in RULES["MT122"].summary


def test_good_images_pass_and_each_bad_one_is_named_by_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "red.png").write_bytes(png("red"))
    with open(tmp_path / "img" / "huge.png", "wb") as big:
        big.truncate(limits().max_bytes + 1)  # sparse: 10 MB and a byte, written in no time
    data_url = "data:image/png;base64," + base64.b64encode(png("red")).decode()
    lines = [
        line(image(data_url)),  # 1: as the hosted API writes it
        line(image("img/red.png"), image("https://example.com/red.png")),  # 2: a file beside the JSONL, a web URL
        line(image((tmp_path / "img" / "red.png").as_uri())),  # 3: a file: URL
        line(image("img/blue.png")),  # 4: no such file
        line(image("data:image/gif;base64,R0lGODlh")),  # 5: a GIF
        line(image("data:image/png;base64,@@@")),  # 6: not base64
        line(image("ftp://example.com/red.png")),  # 7: a scheme we do not read
        line(image("img/huge.png")),  # 8: over the limit
        line(*[image(data_url)] * 11),  # 9: 11 images
        line(answer=[image(data_url)]),  # 10: an image in the assistant's message
        line({"type": "image_url", "image_url": {"url": data_url, "detail": "max"}}),  # 11: detail
        line({"type": "input_image", "image_url": data_url}),  # 12: another API's shape
    ]
    path = tmp_path / "chats.jsonl"
    path.write_text("".join(lines))
    assert main([str(path)]) == 1
    out = capsys.readouterr().out.replace(str(tmp_path), "T")
    found = [row.split(": ", 2)[1:] for row in out.splitlines() if row.startswith("T/chats.jsonl:")]
    where = [row.split(": ", 1)[0].removeprefix("T/chats.jsonl:") for row in out.splitlines() if row.startswith("T/")]
    # the column of the value each finding points at, found in the line as written
    url = {n: lines[n - 1].index(needle) + 1 for n, needle in (
        (4, '"img/blue.png"'), (5, '"data:image/gif'), (6, '"data:image/png;base64,@@@"'), (7, '"ftp:'),
        (8, '"img/huge.png"'))}
    second_part = {n: lines[n - 1].index(', {"type": "i') + 3 for n in (11, 12)}
    assistant_url = lines[9].index('"data:', lines[9].index('"assistant"')) + 1
    assert [(w, f[0].split()[0]) for w, f in zip(where, found, strict=True)] == [
        (f"4:{url[4]}", "MT120"),
        (f"5:{url[5]}", "MT119"),
        (f"6:{url[6]}", "MT119"),
        (f"7:{url[7]}", "MT119"),
        (f"8:{url[8]}", "MT121"),
        (f"9:{lines[8].index('[') + 1}", "MT122"),
        (f"10:{assistant_url}", "MT118"),
        (f"11:{second_part[11]}", "MT109"),
        (f"12:{second_part[12]}", "MT109"),
    ]
    assert f"T/chats.jsonl:4:{url[4]}: MT120 no image file 'T/img/blue.png'" in out
    assert f"T/chats.jsonl:8:{url[8]}: MT121 an image of 10.0 MB; at most 10 MB" in out
    assert "MT122 11 images in one conversation; at most 10" in out
    assert "MT118 an image in an assistant message: only user messages hold images" in out


def test_training_refuses_an_image_naming_it() -> None:
    conversation = json.loads(line(image("img/red.png")))
    with pytest.raises(InvalidConversation) as refused:
        parse_conversation(conversation)
    (problem,) = refused.value.problems
    assert (problem.code, problem.pointer) == ("MT123", "/messages/0/content/1/image_url/url")


def test_the_strategy_names_the_row_with_an_image_and_arrow_nulls_do_not_count() -> None:
    """Rows through Arrow (`Dataset.from_list`: every part gains the other kind's keys as nulls): the text
    rows pass, the row with an image is refused by its index."""
    text = {"messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]},
                         {"role": "assistant", "content": [{"type": "text", "text": "Hello."}]}]}
    with_image = json.loads(line(image("https://example.com/red.png"), answer=[{"type": "text", "text": "Red."}]))
    wrapper = axolotl_load("axolotl_multiturn.chat", tokenizer("chatml"),
                           DictDefault({"multiturn": {"masking": "instruction"}}), DictDefault({"path": "d.jsonl"}))
    assert len(wrapper.wrap_dataset(Dataset.from_list([text, text]))) == 2
    with pytest.raises(RowError, match=r"^d\.jsonl row 1: MT123 an image, but the model takes text only .* at "
                                       r"/messages/0/content/1/image_url/url"):
        wrapper.wrap_dataset(Dataset.from_list([text, with_image]))
