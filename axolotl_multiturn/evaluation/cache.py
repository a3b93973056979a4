"""Key/value caches of what a conversation's prompts share, for `eval`: a held-out conversation's prompts
(each question's gold history, or each pair's prompt) extend one another, so each prompt token is read once,
and caches of several conversations are stacked into one batch.

transformers' `DynamicCache` is public; its layers' `keys`/`values` are read here and only here (the
SmolLM2 test of `eval`'s answers fails when they change meaning).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class Prefix:
    """A conversation's key/value cache of what its prompts share: each prompt extends the one before it by
    the gold answer and the next question, so each prompt token is read once (a prompt that does not extend
    the cached one, from a template that rewrites the history, starts the cache again)."""

    def __init__(self) -> None:
        self.cache: Any = None
        self.ids: list[int] = []

    def read(self, model, ids: list[int]) -> None:
        """Cache all of `ids` but the last token, which generation reads itself for its first logits."""
        import torch
        from transformers import DynamicCache

        known = len(ids) - 1
        if self.cache is None or len(self.ids) > known or ids[: len(self.ids)] != self.ids:
            self.cache, self.ids = DynamicCache(config=model.config), []
        if known > len(self.ids):
            with torch.no_grad():
                model(input_ids=torch.tensor([ids[len(self.ids) : known]]), past_key_values=self.cache, use_cache=True)
            self.ids = ids[:known]


def stacked(model, prefixes: Sequence[Prefix], length: int) -> Any:
    """One batch cache of the prefixes' caches, each left-padded to `length` (the padding is masked by the
    attention mask; positions come from it, so each row keeps its own); a single cache as it is (a copy: a
    cache grows as it generates); None where the caches' layers are not plain growing ones (a sliding-window
    layer keeps only its window, and padding it would misplace its tokens)."""
    import copy

    import torch
    import torch.nn.functional as F
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    if len(prefixes) == 1 and len(prefixes[0].ids) == length:
        return copy.deepcopy(prefixes[0].cache)
    read = [prefix for prefix in prefixes if prefix.ids]
    if not all(type(layer) is DynamicLayer for prefix in read for layer in prefix.cache.layers):
        return None
    stacked = DynamicCache(config=model.config)
    for n, reference in enumerate(read[0].cache.layers if read else []):
        # a row with nothing cached takes an empty slice of another row's states: its padding alone
        keys, values = (
            torch.cat(
                [
                    F.pad(
                        getattr(prefix.cache.layers[n] if prefix.ids else reference, side)[:, :, : len(prefix.ids)],
                        (0, 0, length - len(prefix.ids), 0),
                    )
                    for prefix in prefixes
                ]
            )
            for side in ("keys", "values")
        )
        stacked.update(keys, values, n)
    return stacked
