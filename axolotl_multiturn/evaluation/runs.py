"""`axolotl train` (or `preprocess`) run as a user runs it, from this environment, with the loss per logged step
and our plugin's lines shown as they come: what `make demo` and `compare` on a real model both drive."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from rich.console import Console

LOSS = re.compile(r"\{'loss': '([0-9.]+)'")


def logging_steps(config: Path) -> int:
    """The config's `logging_steps`: axolotl logs the loss every that many steps."""
    import yaml

    return int(yaml.safe_load(Path(config).read_text()).get("logging_steps") or 1)


def losses(output: str) -> list[float]:
    return [float(value) for value in LOSS.findall(output)]


def axolotl(command: str, config: Path, console: Console) -> subprocess.CompletedProcess:
    """Run the axolotl CLI of this environment offline; the whole output is kept (and its end printed, with
    SystemExit, when it fails)."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "AXOLOTL_DO_NOT_TRACK": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }
    # `train --launcher python` trains in the CLI's own process: one CPU process needs no accelerate launcher,
    # which starts a second Python that imports torch and axolotl again and sets one thread where there are more
    launcher = ["--launcher", "python"] if command == "train" else []
    every = logging_steps(config)
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("axolotl")), command, str(config), *launcher],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines, logged = [], 0
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        if loss := LOSS.search(line):
            logged += 1
            console.print(f"step {logged * every:>3}  loss {float(loss.group(1)):.3f}")
        elif "[axolotl_multiturn." in line and "examples/s" not in line:
            console.print(line.rstrip().split("] ", 3)[-1], markup=False)
    process.wait()
    output = "".join(lines)
    if process.returncode:
        console.print(output[-4000:], markup=False)
        raise SystemExit(f"axolotl {command} {config} failed with exit code {process.returncode}")
    return subprocess.CompletedProcess(process.args, process.returncode, output, "")
