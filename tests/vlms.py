"""Tiny random-weight vision-language models of two families, built offline from their real configuration
classes, processors and chat templates (axolotl's `gemma3` and `llava`) over Qwen2's real BPE vocabulary with
each family's image tokens added: what `axolotl train` loads in the image tests. Small images (28x28 after
the image processor) keep a row's image at four tokens, so rows stay short and the CPU fast."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from axolotl.utils.chat_templates import get_chat_template

from axolotl_multiturn.models.tiny import qwen_tokenizer

SIDE = 28  # pixels a side after the image processor: 2x2 patches of 14
GEMMA3_SPECIALS = ("<start_of_image>", "<end_of_image>", "<image_soft_token>", "<start_of_turn>", "<end_of_turn>")


#: A one-layer vision tower's settings (SigLIP for Gemma 3, CLIP for LLaVA).
VISION = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "image_size": SIDE,
    "patch_size": 14,
}


def text_config(tok: Any, hidden: int = 32, **extra: Any) -> dict[str, Any]:
    """A two-layer decoder's settings over `tok`'s vocabulary, `extra` the family's own."""
    return {
        "vocab_size": len(tok),
        "hidden_size": hidden,
        "intermediate_size": 2 * hidden,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "max_position_embeddings": 2048,
        "pad_token_id": tok.pad_token_id,
        "eos_token_id": tok.eos_token_id,
        **extra,
    }


@cache  # a processor over Qwen2's vocabulary takes seconds to build: once a worker (tests only read it)
def gemma3(tok: Any = None, hidden: int = 32) -> tuple[Any, Any]:
    """(processor, model config) of Gemma 3: `<start_of_image>` expanded to four soft tokens, wrapped. Over
    Qwen2's vocabulary unless `tok` is given (the behaviour test's small one)."""
    from transformers import Gemma3Config, Gemma3ImageProcessorPil, Gemma3Processor

    tok = tok or qwen_tokenizer(
        GEMMA3_SPECIALS,
        get_chat_template("gemma3"),
        bos_token="<|endoftext|>",
        eos_token="<end_of_turn>",
        boi_token="<start_of_image>",
        eoi_token="<end_of_image>",
        image_token="<image_soft_token>",
    )
    processor = Gemma3Processor(
        image_processor=Gemma3ImageProcessorPil(size={"height": SIDE, "width": SIDE}),
        tokenizer=tok,
        chat_template=tok.chat_template,
        image_seq_length=4,
    )
    ids = tok.convert_tokens_to_ids
    config = Gemma3Config(
        text_config=text_config(
            tok, hidden, head_dim=hidden // 2, sliding_window=64, bos_token_id=tok.bos_token_id
        ),
        vision_config=VISION,  # SigLIP
        mm_tokens_per_image=4,
        boi_token_index=ids("<start_of_image>"),
        eoi_token_index=ids("<end_of_image>"),
        image_token_index=ids("<image_soft_token>"),
    )
    return processor, config


def small_tokenizer(texts: list[str]) -> Any:
    """A byte-level BPE of 300 ranks trained (HF `tokenizers`) on `texts`, with Gemma 3's special tokens and
    chat template: logits over 300 words instead of 151,000 make the behaviour test's training take seconds."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<pad>", "<bos>", *GEMMA3_SPECIALS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        chat_template=get_chat_template("gemma3"),
        bos_token="<bos>",
        pad_token="<pad>",
        eos_token="<end_of_turn>",
        extra_special_tokens={"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
                              "image_token": "<image_soft_token>"},
    )


@cache
def llava() -> tuple[Any, Any]:
    """(processor, model config) of LLaVA 1.5: `<image>` repeated once per patch; no stop token in its
    template, so its generations end with the turn's text."""
    from transformers import CLIPImageProcessorPil, LlavaConfig, LlavaProcessor

    tok = qwen_tokenizer(["<image>"], get_chat_template("llava"), image_token="<image>")
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(size={"shortest_edge": SIDE}, crop_size={"height": SIDE, "width": SIDE}),
        tokenizer=tok,
        chat_template=tok.chat_template,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )
    config = LlavaConfig(
        vision_config={**VISION, "model_type": "clip_vision_model", "projection_dim": 32},
        text_config=text_config(tok, model_type="qwen2"),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    return processor, config


QWEN2_VL_SPECIALS = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")


@cache
def qwen2_vl() -> tuple[Any, Any]:
    """(processor, model config) of Qwen2-VL: `<|image_pad|>` repeated once per merged 2x2 patch group. Its
    processor carries a video processor, which needs torchvision (`vision_families`)."""
    from transformers import Qwen2VLConfig, Qwen2VLImageProcessor, Qwen2VLProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    tok = qwen_tokenizer(QWEN2_VL_SPECIALS, get_chat_template("qwen2_vl"))
    pixels = 56 * 56  # 4x4 patches of 14: four image tokens after the 2x2 merge
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=pixels, max_pixels=pixels),
        tokenizer=tok,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=tok.chat_template,
    )
    ids = tok.convert_tokens_to_ids
    config = Qwen2VLConfig(
        text_config=text_config(tok, rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]}),
        vision_config={"depth": 1, "embed_dim": 32, "hidden_size": 32, "num_heads": 2, "mlp_ratio": 2,
                       "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2},
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )
    return processor, config


def torchvision_imports() -> bool:
    """Whether torchvision imports here: not beside the torch CPU wheel of the 3.11 lane (docs/images.md)."""
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001 - any failure to import it means no Qwen2-VL processor
        return False
    return True


FAMILIES: dict[str, Callable[[], tuple[Any, Any]]] = {"gemma3": gemma3, "llava": llava, "qwen2_vl": qwen2_vl}


def build(family: str, out: Path, seed: int = 0) -> Path:
    """Write a tiny random-weight model of `family` and its processor into `out`."""
    import torch
    from transformers import AutoModelForImageTextToText

    processor, config = FAMILIES[family]()
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def data_url(colour: tuple[int, int, int], size: tuple[int, int] = (40, 30), shape: str = "square") -> str:
    """A drawn PNG as a data URL: a shape of `colour` on white."""
    from PIL import Image, ImageDraw

    picture = Image.new("RGB", size, (255, 255, 255))
    box = (size[0] // 4, size[1] // 4, 3 * size[0] // 4, 3 * size[1] // 4)
    draw = ImageDraw.Draw(picture)
    (draw.ellipse if shape == "circle" else draw.rectangle)(box, fill=colour)
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
