"""Lint speed: `check-chat-jsonl` against the floor (a bare `orjson.loads` loop) and a per-line python
`jsonschema` `iter_errors` loop, each as a whole process on the same generated 20,000-line CoQA-shaped
file, best of 3 runs. Target: check-chat-jsonl within 1.5x of the parse-only time. check-chat-jsonl
checks a large file on every core; `--jobs 1` (one process) is shown too. Two bounds (`lint_bound.py`)
show what a checker built like ours costs with no Python checks at all: parse and compiled schema on every
core, then also the byte work its findings need.

    python benchmarks/lint.py [--lines N]
"""

from __future__ import annotations

import argparse
import compileall
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from shapes import coqa_shaped  # noqa: E402

PARSE_ONLY = """
import sys, orjson
with open(sys.argv[1], "rb") as f:
    for line in f:
        orjson.loads(line)
"""

PYTHON_JSONSCHEMA = """
import json, sys, jsonschema, orjson
schema = json.load(open(sys.argv[2]))
validator = jsonschema.validators.validator_for(schema)(schema)
with open(sys.argv[1], "rb") as f:
    for line in f:
        list(validator.iter_errors(orjson.loads(line)))
"""


def best_of(command: list[str], runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if result.returncode not in (0, 1):
            raise SystemExit(f"{command[0]} failed: {result.stderr[-2000:]}")
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=20_000)
    args = parser.parse_args(argv)
    root = Path(__file__).resolve().parent.parent
    schema = root / "schemas" / "conversation.schema.json"
    # Bytecode as an installed package has it (pip compiles on install): an editable install under
    # PYTHONDONTWRITEBYTECODE would compile the checker from source in every process timed.
    compileall.compile_dir(root / "axolotl_multiturn", quiet=1)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "coqa.jsonl"
        rows = coqa_shaped(random.Random(0), args.lines)
        data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        size_mb = data.stat().st_size / 1e6
        check = str(Path(sys.executable).with_name("check-chat-jsonl"))
        bound = Path(__file__).with_name("lint_bound.py")
        timings = {
            "orjson.loads loop (floor)": best_of([sys.executable, "-c", PARSE_ONLY, str(data)]),
            "bound: parse + schema": best_of([sys.executable, str(bound), str(data), str(schema), "schema"]),
            "bound: + byte work": best_of([sys.executable, str(bound), str(data), str(schema), "bytes"]),
            "check-chat-jsonl": best_of([check, str(data)]),
            "check-chat-jsonl --jobs 1": best_of([check, "--jobs", "1", str(data)]),
            "python jsonschema iter_errors": best_of([sys.executable, "-c", PYTHON_JSONSCHEMA, str(data), str(schema)]),
        }
    floor = timings["orjson.loads loop (floor)"]
    print(f"{args.lines:,} CoQA-shaped lines, {size_mb:.1f} MB; whole processes, best of 3")
    print(f"{'':<32} {'seconds':>8} {'lines/s':>10} {'x floor':>8}")
    for name, seconds in timings.items():
        print(f"{name:<32} {seconds:>8.2f} {args.lines / seconds:>10,.0f} {seconds / floor:>8.2f}")
    ratio = timings["check-chat-jsonl"] / floor
    print(
        f"check-chat-jsonl is {ratio:.2f}x the parse-only time (target <= 1.5x: "
        f"{'met' if ratio <= 1.5 else 'NOT met'}); one process: "
        f"{timings['check-chat-jsonl --jobs 1'] / floor:.2f}x; parse and compiled schema alone on every "
        f"core: {timings['bound: parse + schema'] / floor:.2f}x, with the byte work the findings need: "
        f"{timings['bound: + byte work'] / floor:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
