"""Hook `check-chat-jsonl`: lint chat JSONL files (the linter's own command line)."""

from axolotl_multiturn.lint.cli import main

__all__ = ["main"]
