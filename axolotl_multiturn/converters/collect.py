"""The registry: every converter, ours and installed plugins', collected through pluggy."""

from __future__ import annotations

from functools import cache

import pluggy

from axolotl_multiturn.converters import builtin
from axolotl_multiturn.converters.spec import ENTRY_POINT_GROUP, PROJECT, Converter, Spec


@cache
def registry() -> dict[str, Converter]:
    """Every converter by name: ours, then those of installed plugins (`ENTRY_POINT_GROUP`)."""
    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(Spec)
    manager.register(builtin)
    manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    converters: dict[str, Converter] = {}
    for provided in manager.hook.axolotl_multiturn_converters():
        for converter in provided:
            if converter.name in converters:
                raise ValueError(f"two converters are named {converter.name!r}; a plugin must pick another name")
            converters[converter.name] = converter
    return converters
