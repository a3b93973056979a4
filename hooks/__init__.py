"""pre-commit hooks, one module per hook, each with `main(argv) -> int` (see `.pre-commit-hooks.yaml`).

This folder is shipped inside the package as `axolotl_multiturn.hooks` (a symbolic link there points here).
"""
