"""It learns to look: a tiny Gemma 3 (random weights, `vlms.gemma3`) fully fine-tuned on our rows and our collator's
batches of two-turn chats about drawn shapes ("What colour is it?" / "Red.", then "And its shape?" / "A circle.",
about the same image) must answer held-out drawings (other sizes) correctly, greedily, and stop on
`<end_of_turn>` by itself. The negative control trains on the same chats with each image moved to the next
conversation: it learns its training rows, but what it learned does not come from what the images show, so it
fails the held-out drawings. A 300-word vocabulary (`vlms.small_tokenizer`) keeps each run to seconds."""

from __future__ import annotations

import random
from typing import Any

import pytest
import torch
from datasets import Dataset
from test_vision import as_processor_reads, image, strategy, text
from vlms import data_url, gemma3, small_tokenizer

from axolotl_multiturn.integration.collator import VisionCollator

pytestmark = pytest.mark.slow
COLOURS = {"red": (220, 30, 30), "green": (30, 170, 30), "blue": (30, 30, 220)}
SHAPES = ("square", "circle")
QUESTIONS = ("What colour is it?", "And its shape?")
STEPS, BATCH, RATE = 200, 8, 1e-3


def answers(colour: str, shape: str) -> tuple[str, str]:
    return f"{colour.capitalize()}.", f"A {shape}."


def chat(rng: random.Random, colour: str, shape: str) -> dict:
    size = (rng.randint(24, 48), rng.randint(24, 48))
    first, second = answers(colour, shape)
    return {"messages": [
        {"role": "user", "content": [image(data_url(COLOURS[colour], size, shape)), text(QUESTIONS[0])]},
        {"role": "assistant", "content": [text(first)]},
        {"role": "user", "content": [text(QUESTIONS[1])]},
        {"role": "assistant", "content": [text(second)]}]}


def trained_accuracy(swap: bool) -> tuple[float, float]:
    """(share of held-out questions answered exactly, share of answers that stopped by themselves)."""
    rng = random.Random(0)
    kinds = [(c, s) for c in COLOURS for s in SHAPES]
    train = [chat(rng, *kinds[k % len(kinds)]) for k in range(48)]
    held_out = [chat(rng, *kind) for kind in kinds for _ in range(2)]
    if swap:
        images = [c["messages"][0]["content"][0] for c in train]
        for conversation, moved in zip(train, images[1:] + images[:1]):
            conversation["messages"][0]["content"][0] = moved
    texts = ["user\nmodel\n", *QUESTIONS, *(a for kind in kinds for a in answers(*kind))] * 20
    processor, config = gemma3(small_tokenizer(texts), hidden=64)
    tok = processor.tokenizer
    torch.manual_seed(0)
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_config(config)
    rows = strategy(processor, "instruction").wrap_dataset(Dataset.from_list(train)).to_list()
    collate = VisionCollator(tok, padding=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=RATE)
    model.train()
    for _ in range(STEPS):
        model(**collate([dict(r) for r in rng.sample(rows, BATCH)])).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    stop = tok.convert_tokens_to_ids("<end_of_turn>")
    right = stopped = asked = 0
    for conversation in held_out:
        messages = conversation["messages"]
        for i in (1, 3):
            inputs: Any = processor.apply_chat_template(as_processor_reads(messages[:i]), add_generation_prompt=True,
                                                        tokenize=True, return_dict=True, return_tensors="pt")
            with torch.no_grad():
                out = model.generate(**inputs, max_new_tokens=6, do_sample=False, eos_token_id=stop,
                                     pad_token_id=tok.pad_token_id)
            new = out[0, inputs["input_ids"].shape[1]:].tolist()
            right += tok.decode([t for t in new if t != stop]) == messages[i]["content"][0]["text"]
            stopped += stop in new
            asked += 1
    return right / asked, stopped / asked


def test_a_tiny_vlm_trained_on_our_rows_answers_held_out_drawings_and_stops() -> None:
    assert trained_accuracy(swap=False) == (1.0, 1.0)


def test_with_the_images_swapped_it_does_not() -> None:
    accuracy, _ = trained_accuracy(swap=True)
    assert accuracy <= 0.5  # chance: a third of the colours and half of the shapes
