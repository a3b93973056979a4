"""Converters from other dataset formats to chat JSONL, an extension point.

A converter is found through pluggy: this package registers its own (`builtin.py`) and every
plugin module named in the entry-point group `axolotl_multiturn.converters`. A plugin module implements
the hook `axolotl_multiturn_converters()` and returns `Converter` objects (see `spec.py`).
"""

from axolotl_multiturn.converters.collect import registry
from axolotl_multiturn.converters.spec import ConversionError, Converter, hookimpl

__all__ = ["ConversionError", "Converter", "hookimpl", "registry"]
