"""Exact multi-turn chat loss masking for axolotl, and a linter for chat JSONL datasets.

`axolotl_multiturn.MultiTurnPlugin` is imported lazily so that the linter (the base install,
without axolotl or torch) can import this package.
"""

from typing import Any

__version__ = "0.1.0"
DATASET_TYPE = "axolotl_multiturn.chat"

__all__ = ["DATASET_TYPE", "MultiTurnPlugin", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "MultiTurnPlugin":
        from axolotl_multiturn.integration.plugin import MultiTurnPlugin

        return MultiTurnPlugin
    if name == "chat":  # axolotl's RL loaders look the dataset type up as an attribute of the package
        import importlib

        return importlib.import_module("axolotl_multiturn.chat")
    raise AttributeError(f"module 'axolotl_multiturn' has no attribute {name!r}")
