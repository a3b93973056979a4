"""Rows for a vision-language model: its processor's input ids for a render, aligned to the render's spans.

The chat template writes markup for each image (`<|vision_start|><|image_pad|><|vision_end|>`,
`<start_of_image>`, `<image>\\n`: `Kind.IMAGE` spans). At inference the model's processor expands that markup
into the image's tokens (how many depends on the image) and may wrap them (Gemma 3 writes
`\\n\\n<start_of_image>...<end_of_image>\\n\\n`, which merges with the template's own newline). So a row is the
processor's output for the render and its images, as the model sees it at inference, and each of its tokens is
mapped to the render's spans by aligning its ids with the render's tokens: equal runs map one to one; a run the
processor changed next to or inside an image's markup belongs to the image (never trained); text the two
tokenize differently elsewhere keeps the render's tokens, which are tokenized as at inference (a generation
prompt apart, special-token text in a message literal).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

import numpy as np

from axolotl_multiturn.engine.conversation import Image
from axolotl_multiturn.engine.encode import Encoded
from axolotl_multiturn.engine.images import image_bytes
from axolotl_multiturn.engine.spans import Column, Kind, UnlabelableError

#: Processor outputs that are the row itself, not what comes with it.
_ROW = ("input_ids", "attention_mask")
#: The prefix of a per-token output's name (`token_type_ids`: one value per input id, padded with the row).
TOKEN = "token."


class ImageUnreadable(UnlabelableError):
    """An image of the conversation cannot be read (a file gone since the lint, a broken image)."""


class Vision:
    """A vision-language model's processor, and the folder image paths are relative to."""

    def __init__(self, processor: Any, folder: Path):
        self.processor = processor
        self.folder = folder

    def load(self, images: Sequence[Image]) -> list[Any]:
        """The images as RGB pictures, in order."""
        from PIL import Image as Pictures

        out = []
        for n, image in enumerate(images):
            try:
                with Pictures.open(io.BytesIO(image_bytes(image.url, self.folder))) as picture:
                    out.append(picture.convert("RGB"))
            except (ValueError, OSError) as error:
                raise ImageUnreadable(f"image {n + 1} cannot be read: {error}") from None
        return out

    def expand(self, item: Encoded) -> Encoded:
        """`item` as the model sees it at inference: the processor's tokens for its images, ours for its text
        (see `_merge`), every token mapped to the render's spans, image tokens flagged, and the processor's
        other outputs (pixel values, ...)."""
        pictures = self.load(item.conversation.images)
        out = self.processor(text=[item.rendered.text], images=[pictures], return_tensors="np")
        theirs = np.asarray(out["input_ids"])[0].astype(np.int64)
        ids, first, last, image, offsets, source = _merge(item, theirs)
        vision = {}
        for key, value in ((k, np.asarray(v)) for k, v in out.items() if k not in _ROW):
            if value.ndim == 2 and value.shape == (1, len(theirs)):  # one value a token: ours take text's (0)
                vision[TOKEN + key] = np.where(source >= 0, value[0][np.maximum(source, 0)], 0)
            else:
                vision[key] = value
        return Encoded(ids, offsets, item.rendered, item.plan, first, last, image, vision)


def _merge(item: Encoded, theirs: np.ndarray) -> tuple[np.ndarray, ...]:
    """The row's tokens: where the processor's ids and the render's tokens differ around an image (its
    expansion, its wrapping), the processor's; where they differ elsewhere, ours: the render's tokens are
    the inference-faithful ones (a generation prompt tokenized apart where a token would straddle it, as the
    prompt is at inference; special-token text in a message kept literal, docs/exactness.md). Returns ids,
    the first and last span of each token, the image flags (an image's tokens, its markup and the
    processor's wrapping, no text), the render's characters each stands for (a run the processor changed
    shares them; one it inserted has none), and each token's position in the processor's ids (-1: ours)."""
    kinds = item.rendered.table[:, Column.KIND]
    ours = (kinds[item.first] == Kind.IMAGE) | (kinds[item.last] == Kind.IMAGE)  # our tokens of image markup
    pieces: list[tuple[np.ndarray, ...]] = []
    for i1, i2, j1, j2, equal in _blocks(item.input_ids, theirs):
        if equal:
            pieces.append(
                (
                    theirs[j1:j2],
                    item.first[i1:i2],
                    item.last[i1:i2],
                    ours[i1:i2],
                    item.offsets[i1:i2],
                    np.arange(j1, j2),
                )
            )
            continue
        # the image markup next to the run: the one before it (a processor expands a placeholder in place, so
        # what follows it is its image's), else the one after it (Gemma 3's newlines before `<start_of_image>`)
        around = [k for k in (i1 - 1, i2) if 0 <= k < len(ours) and ours[k]][:1]
        if not (ours[i1:i2].any() or around):  # text the two tokenize differently: ours
            pieces.append(
                (
                    item.input_ids[i1:i2],
                    item.first[i1:i2],
                    item.last[i1:i2],
                    np.zeros(i2 - i1, dtype=bool),
                    item.offsets[i1:i2],
                    np.full(i2 - i1, -1),
                )
            )
            continue
        if j2 == j1:  # the processor dropped image markup of the render
            continue
        touched = list(range(i1, i2)) + around
        at = item.offsets[i1 - 1, 1] if i1 else 0
        span = (item.offsets[i1, 0], item.offsets[i2 - 1, 1]) if i2 > i1 else (at, at)
        n = j2 - j1
        pieces.append(
            (
                theirs[j1:j2],
                np.full(n, item.first[touched].min()),
                np.full(n, item.last[touched].max()),
                np.ones(n, dtype=bool),
                np.tile(np.array(span, dtype=np.int64), (n, 1)),
                np.arange(j1, j2),
            )
        )
    ids, first, last, image, offsets, source = (np.concatenate(column) for column in zip(*pieces))
    text = ~np.isin(kinds, (Kind.TEMPLATE, Kind.IMAGE))  # a token that also holds text is the text's
    counts = np.concatenate(([0], np.cumsum(text)))
    return ids, first, last, image & (counts[last + 1] == counts[first]), offsets.reshape(-1, 2), source


def _blocks(ours: np.ndarray, theirs: np.ndarray) -> list[tuple[int, int, int, int, bool]]:
    """Our ids and the processor's as aligned runs (i1, i2, j1, j2, equal): runs of equal ids, and the runs
    between them. Of equal alignments, each of our tokens takes the earliest copy of a repeated id (`<image>`
    is the first of its image's copies, the copies the processor added follow it)."""
    mine, other = ours.tolist(), theirs.tolist()
    match = [-1] * len(other)
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, mine, other, autojunk=False).get_opcodes():
        if tag == "equal":
            match[j1:j2] = range(i1, i2)
    for j in range(1, len(other)):  # left-shift matches over unmatched copies of the same id
        k = j
        while k > 0 and match[k] >= 0 and match[k - 1] < 0 and other[k - 1] == other[k]:
            match[k - 1], match[k] = match[k], -1
            k -= 1
    out, i, j, n = [], 0, 0, len(other)
    while j < n or i < len(mine):
        if j < n and match[j] == i:
            k = j
            while k < n and match[k] == i + k - j:
                k += 1
            out.append((i, i + k - j, j, k, True))
            i, j = i + k - j, k
            continue
        k = j
        while k < n and match[k] < 0:
            k += 1
        end = match[k] if k < n else len(mine)
        out.append((i, end, j, k, False))
        i, j = end, k
    return out


def pack(vision: Mapping[str, np.ndarray] | None) -> bytes:
    """A row's processor outputs as one value (npz bytes; empty without images) for its Arrow column."""
    if not vision:
        return b""
    buffer = io.BytesIO()
    np.savez(buffer, **vision)
    return buffer.getvalue()


def unpack(value: bytes | None) -> dict[str, np.ndarray]:
    """What `pack` wrote."""
    if not value:
        return {}
    with np.load(io.BytesIO(value)) as arrays:
        return {key: arrays[key] for key in arrays.files}
