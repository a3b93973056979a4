"""`python -m axolotl_multiturn.demo [--tiny [--rebuild]]`: `make demo` (the real model) or `make demo-tiny`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The CoQA workflow end to end, offline, on the CPU.")
    parser.add_argument("--tiny", action="store_true", help="the embedded random tiny model (make demo-tiny)")
    parser.add_argument("--rebuild", action="store_true", help="with --tiny: rebuild the tiny model")
    args = parser.parse_args(argv)
    if args.tiny:
        from axolotl_multiturn.demo.tiny import main as tiny

        return tiny(args.rebuild)
    from axolotl_multiturn.demo.real import main as real

    return real()


if __name__ == "__main__":
    sys.exit(main())
