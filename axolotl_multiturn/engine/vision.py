"""Rows for a vision-language model: its processor's input ids for a render, aligned to the render's spans.

The chat template writes markup for each image (`<|vision_start|><|image_pad|><|vision_end|>`,
`<start_of_image>`, `<image>\\n`: `Kind.IMAGE` spans). At inference the model's processor expands that markup
into the image's tokens (how many depends on the image) and may wrap them (Gemma 3 writes
`\\n\\n<start_of_image>...<end_of_image>\\n\\n`, which merges with the template's own newline). So a row is the
processor's own output for the render and its images, exactly what the model sees at inference, and each of
its tokens is mapped to the render's spans by aligning its ids with the render's tokens: equal runs map one
to one; a run the processor changed next to or inside an image's markup belongs to the image (never trained).
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
        """`item` as the processor makes it: its ids, every token mapped to the render's spans, image
        tokens flagged, and the processor's other outputs (pixel values, ...)."""
        pictures = self.load(item.conversation.images)
        out = self.processor(text=[item.rendered.text], images=[pictures], return_tensors="np")
        ids = np.asarray(out["input_ids"])[0].astype(np.int64)
        vision = {}
        for key, value in ((k, np.asarray(v)) for k, v in out.items() if k not in _ROW):
            per_token = value.ndim == 2 and value.shape == (1, len(ids))
            vision[TOKEN + key if per_token else key] = value[0] if per_token else value
        first, last, image, offsets = _align(item, ids)
        return Encoded(ids, offsets, item.rendered, item.plan, first, last, image, vision)


def _align(item: Encoded, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For each of the processor's tokens: the first and last span it stands for, whether it is an image's
    (the processor's expansion or wrapping of a template's image markup, holding no text), and the render's
    characters it stands for (a run the processor changed shares its characters; an inserted one has none)."""
    kinds = item.rendered.table[:, Column.KIND]
    ours = (kinds[item.first] == Kind.IMAGE) | (kinds[item.last] == Kind.IMAGE)  # our tokens of image markup
    first = np.empty(len(ids), dtype=np.int64)
    last = np.empty(len(ids), dtype=np.int64)
    image = np.zeros(len(ids), dtype=bool)
    offsets = np.empty((len(ids), 2), dtype=np.int64)
    for i1, i2, j1, j2, equal in _blocks(item.input_ids, ids):
        if equal:
            first[j1:j2], last[j1:j2], image[j1:j2] = item.first[i1:i2], item.last[i1:i2], ours[i1:i2]
            offsets[j1:j2] = item.offsets[i1:i2]
            continue
        if j2 == j1:  # the processor dropped tokens of the render: nothing of ours to map
            if not ours[i1:i2].all():
                raise UnlabelableError("the processor drops text of the render, not only image markup")
            continue
        # the image markup next to the run: the one before it (a processor expands a placeholder in place, so
        # what follows it is its image's), else the one after it (Gemma 3's newlines before `<start_of_image>`)
        around = [k for k in (i1 - 1, i2) if 0 <= k < len(ours) and ours[k]][:1]
        touched = list(range(i1, i2)) + around if i2 > i1 or around else [max(i1 - 1, 0), min(i1, len(ours) - 1)]
        first[j1:j2] = item.first[touched].min()
        last[j1:j2] = item.last[touched].max()
        image[j1:j2] = bool(ours[i1:i2].any() or around)
        at = item.offsets[i1 - 1, 1] if i1 else 0
        offsets[j1:j2] = (item.offsets[i1, 0], item.offsets[i2 - 1, 1]) if i2 > i1 else (at, at)
    text = ~np.isin(kinds, (Kind.TEMPLATE, Kind.IMAGE))  # a token that also holds text is the text's
    counts = np.concatenate(([0], np.cumsum(text)))
    return first, last, image & (counts[last + 1] == counts[first]), offsets


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
