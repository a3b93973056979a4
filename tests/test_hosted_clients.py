"""`--compat hosted` against the hosted API's real clients, run on every example file.

`make install` puts together 3.1.1 (the current client: syntax checks) and 2.14.0 (the last client with the
semantic checks) in virtualenvs of their own under `VENV/clients/`; each runs its own `check_file` here.
Hosted mode must reject exactly the files that either client rejects: it has no rule of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from axolotl_multiturn.lint.checker import check_lines
from axolotl_multiturn.lint.hosted import Hosted

EXAMPLES = Path(__file__).parent / "examples"
HOSTED = EXAMPLES / "hosted"
CLIENTS = ("3.1.1", "2.14.0")
FILES = sorted(p for p in EXAMPLES.rglob("*") if p.is_file() and p.suffix in (".jsonl", ".json")
               and p.name != "expected.json")
#: Each file's verdict; a client that raises on a file (2.14.0 and 3.1.1 let a RecursionError out of
#: `json.loads` on deep nesting) does not upload it either: a rejection.
RUN = """import json, sys
from together.lib.utils.files import check_file
def passed(path):
    try:
        return check_file(path)["is_check_passed"]
    except Exception:
        return False
print(json.dumps({p: passed(p) for p in sys.argv[1:]}))"""


@cache
def client_verdicts(version: str) -> dict[str, bool]:
    """Whether together `version`'s `check_file` passes each example file."""
    python = Path(sys.prefix) / "clients" / f"together-{version}" / "bin" / "python"
    assert python.exists(), f"{python} is missing: `make install` installs the hosted clients"
    out = subprocess.run([str(python), "-c", RUN, *map(str, FILES)], capture_output=True, text=True, check=True,
                         env={**os.environ, "TOGETHER_DISABLE_TQDM": "true"}, timeout=300)
    return json.loads(out.stdout)


def ours(path: Path) -> list[str]:
    with open(path, "rb") as stream:
        return [f"{f.line}:{f.column} {f.code}" for f in check_lines(str(path), stream, "hosted")
                if f.severity == "error"]


def test_the_clients_are_the_versions_named() -> None:
    for version in CLIENTS:
        python = Path(sys.prefix) / "clients" / f"together-{version}" / "bin" / "python"
        out = subprocess.run([str(python), "-c", "import together; print(together.__version__)"],
                             capture_output=True, text=True, check=True)
        assert out.stdout.strip() == version


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_hosted_mode_rejects_exactly_what_a_client_rejects(path: Path) -> None:
    rejected_by = [v for v in CLIENTS if not client_verdicts(v)[str(path)]]
    found = ours(path)
    assert bool(found) == bool(rejected_by), (rejected_by, found)


def test_the_corpus_covers_both_verdicts_of_every_client() -> None:
    """Files each client passes and rejects, and files only the older client rejects (its semantic rules)."""
    new, old = (client_verdicts(v) for v in CLIENTS)
    assert {(new[str(p)], old[str(p)]) for p in FILES} == {(True, True), (True, False), (False, False)}


def test_hosted_example_findings() -> None:
    expected = json.loads((HOSTED / "expected.json").read_text())
    assert sorted(expected) == sorted(p.name for p in HOSTED.iterdir() if p.name != "expected.json")
    for name, findings in expected.items():
        assert ours(HOSTED / name) == findings, name


def test_size_limit_is_the_clients_50_1_gib() -> None:
    """HS109 without writing 50 GiB: the profile's end-of-file check on the size alone."""
    limit = int(50.1 * 2**30)
    assert [code for code, _, _ in Hosted().end("big.jsonl", limit)] == ["HS106"]  # no sample seen
    assert [code for code, _, _ in Hosted().end("big.jsonl", limit + 1)] == ["HS109", "HS106"]
