"""The converter hook specification: what a converter is and provides (`collect.py` gathers them)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import dataclass
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
