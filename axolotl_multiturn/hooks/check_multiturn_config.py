"""Hook `check-multiturn-config`: axolotl YAML configs that use this project are checked against
`schemas/multiturn-config.schema.json` before a training run finds the mistake.

A file is ours when it lists the plugin or a dataset of our type; other YAML files pass untouched.
Dataset entries of our type are checked for our keys; a key that is close to one of ours but not
equal (`maskng`) is an error. With axolotl installed, any key axolotl does not know is an error too.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import yaml

from axolotl_multiturn import DATASET_TYPE
from axolotl_multiturn.integration.options import ConfigError, option_keys, suggest, validate_block

PLUGIN = "axolotl_multiturn.MultiTurnPlugin"
SECTIONS = ("datasets", "test_datasets")


def _axolotl_dataset_keys() -> set[str] | None:
    try:
        from axolotl.utils.schemas.datasets import SFTDataset
    except ImportError:
        return None
    return set(SFTDataset.model_fields)


def problems(cfg: Any) -> list[str]:
    """Every mistake in one parsed config, as `where: what; fix` strings."""
    if not isinstance(cfg, dict):
        return []
    ours = [
        (f"{section}[{i}]", entry)
        for section in SECTIONS
        for i, entry in enumerate(cfg.get(section) or [])
        if isinstance(entry, dict) and entry.get("type") == DATASET_TYPE
    ]
    if PLUGIN not in (cfg.get("plugins") or []) and not ours and "multiturn" not in cfg:
        return []
    found = []
    if ours and PLUGIN not in (cfg.get("plugins") or []):
        found.append(f"plugins: add {PLUGIN}; without it axolotl drops the per-dataset keys of {DATASET_TYPE}")
    blocks = [("multiturn", cfg.get("multiturn"))]
    axolotl_keys = _axolotl_dataset_keys()
    for where, entry in ours:
        blocks.append((where, {k: v for k, v in entry.items() if k in option_keys()}))
        for key in entry:
            if key in option_keys():
                continue
            hint = suggest(key, option_keys(), cutoff=0.8)
            if hint or (axolotl_keys is not None and key not in axolotl_keys):
                found.append(f"{where}.{key}: unknown key for type {DATASET_TYPE}{hint}")
    for where, block in blocks:
        try:
            validate_block(block, where)
        except ConfigError as error:
            found.append(str(error))
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="check-multiturn-config", description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", metavar="FILE")
    args = parser.parse_args(argv)
    status = 0
    for path in args.files:
        try:
            with open(path, encoding="utf-8") as stream:
                cfg = yaml.safe_load(stream)
        except OSError as error:
            print(f"{path}: cannot read: {error.strerror or error}", file=sys.stderr)
            status = 2
            continue
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            line = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
            print(f"{path}{line}: invalid YAML: {getattr(error, 'problem', error)}")
            status = max(status, 1)
            continue
        for problem in problems(cfg):
            print(f"{path}: {problem}")
            status = max(status, 1)
    return status


if __name__ == "__main__":
    sys.exit(main())
