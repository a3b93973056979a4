"""Dataset lint for chat JSONL: rules, a streaming checker, reporters and the `check-chat-jsonl` CLI."""
