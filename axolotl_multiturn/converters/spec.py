"""The converter hook specification and the registry that collects converters through pluggy."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

import pluggy

PROJECT = "axolotl_multiturn"
ENTRY_POINT_GROUP = "axolotl_multiturn.converters"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class ConversionError(ValueError):
    """A source row that cannot become a conversation; says why."""


@dataclass(frozen=True, slots=True)
class Row:
    """One converted source row: its index in the source and its conversation, or why it failed."""

    index: int
    conversation: dict[str, Any] | None = None
    error: str | None = None


class Converter(Protocol):
    name: str
    help: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Options of this converter (e.g. coqa's --split and --system-prompt)."""

    def rows(self, source: str, args: argparse.Namespace) -> Iterator[Row]:
        """Every row of the source, in order, converted or with its error."""


class Spec:
    @hookspec
    def axolotl_multiturn_converters(self) -> list[Converter]:
        """The converters a plugin provides."""


@cache
def registry() -> dict[str, Converter]:
    """Every converter by name: ours, then those of installed plugins (entry-point group above)."""
    from axolotl_multiturn.converters import builtin

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
