"""`axolotl COMMAND CONFIG` as a user runs it, in a process forked from one that has already imported axolotl.

Each run is axolotl's own console entry point (`axolotl.cli.main:main`, what the `axolotl` script calls) with
its own argv, environment, working directory, stdout and stderr, exit status and memory, in a fresh process:
what differs from starting the script is only that the imports (about 12 of the 20 s a run took here) were
done once a test worker, by a fork server (the standard library's `forkserver` context, which preloads
modules and forks a child per run before any thread or model exists).
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import subprocess
import sys
import tempfile
from pathlib import Path

#: What the fork server imports once: the CLI and what its train and preprocess commands import.
PRELOAD = [
    "axolotl.cli.main",
    "axolotl.cli.train",
    "axolotl.cli.preprocess",
    "axolotl.core.builders",
    "axolotl_multiturn.integration.plugin",
]
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(PRELOAD)


def _main(argv: list[str], env: dict[str, str], cwd: str, out: str, err: str, path: list[str]) -> None:
    """The child: the run's files as stdout and stderr, its environment and directory, then the entry point."""
    for fd, name in ((1, out), (2, err)):
        os.dup2(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    sys.path[:0] = [p for p in path if p not in sys.path]
    # Processes the run starts (a DataLoader's workers) start as in the `axolotl` script, by the platform's
    # default (fork), not through this fork server: a second server would import axolotl again.
    multiprocessing.set_start_method(None, force=True)
    # The preloaded modules' objects out of the collector's sight: axolotl's DPO trainer collects every step.
    gc.freeze()
    sys.argv = ["axolotl", *argv]
    from axolotl.cli.main import main

    code: object = 0
    try:
        main()
    except SystemExit as exit_:
        code = exit_.code
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else 1 if code else 0)


def run(argv: list[str], env: dict[str, str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """`axolotl *argv` in a forked child; its exit status and output as `subprocess.run` gives them."""
    path = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    with tempfile.TemporaryDirectory() as logs:
        out, err = os.path.join(logs, "stdout"), os.path.join(logs, "stderr")
        child = _CONTEXT.Process(target=_main, args=(argv, env, str(cwd), out, err, path))
        child.start()
        child.join(timeout)
        if child.is_alive():
            child.kill()
            child.join()
            raise subprocess.TimeoutExpired(["axolotl", *argv], timeout)
        with open(out, encoding="utf-8", errors="replace") as o, open(err, encoding="utf-8", errors="replace") as e:
            return subprocess.CompletedProcess(["axolotl", *argv], child.exitcode, o.read(), e.read())
