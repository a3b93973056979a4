"""Hook `check-chat-jsonl`: lint chat JSONL files (the linter's own command line)."""

from axolotl_multiturn.cli.lint import main

__all__ = ["main"]
