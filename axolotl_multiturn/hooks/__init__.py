"""pre-commit hooks, one module per hook, each with `main(argv) -> int`.

`.pre-commit-hooks.yaml` at the repository root names their console scripts (`check-chat-jsonl`,
`check-multiturn-config`), so pre-commit installs this package from the repository and runs them.
"""
