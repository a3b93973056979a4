"""How trained and masked text looks in the terminal previews (conversations and pairs): styles, the marks
used when the output is not a terminal, and a token's text as shown."""

from __future__ import annotations

from typing import NamedTuple

TRAINED_STYLE = "bold black on green3"
MASKED_STYLE = "grey50"
#: Classes shown apart from plain text: trained, and (italic) masked.
CLASS_STYLES = {
    "tool_call": ("bold black on orange1", "italic grey50"),
    "tool_result": ("bold black on light_sky_blue1", "italic grey50"),
    "reasoning": ("bold black on plum2", "grey50"),
    "image": ("reverse", "reverse grey50"),  # an image's tokens, one marker (never trained)
}
OPEN, CLOSE = "«", "»"  # marks trained text when the output is not a terminal


class Piece(NamedTuple):
    """A token's text as shown: trained or not, its index and id (-1: text no token's offsets cover) and
    its class (a `Kind` name, or tool_result for a tool message's content)."""

    text: str
    trained: bool
    index: int
    token_id: int
    cls: str
