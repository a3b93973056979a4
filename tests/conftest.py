"""Shared test setup: offline hubs, no telemetry, one thread per core among xdist's workers, the tiny model
built once a session, and the `tests/` helpers on the import path."""

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("AXOLOTL_DO_NOT_TRACK", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# `-n auto` starts a worker per core: each worker's torch (and each axolotl or torchrun process it starts,
# which inherit this) gets its share of the cores instead of all of them, so workers do not fight over them.
# Set before anything imports torch.
if workers := int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0")):
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
sys.path.insert(0, str(Path(__file__).parent))

ROOT = Path(__file__).resolve().parent.parent


import pytest  # noqa: E402


def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder all of this session's xdist workers see (the parent of each worker's base temp), or the
    base temp itself without xdist."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded tiny model (random-weight Llama, Qwen2 vocabulary, chatml), built once a session: the
    first worker builds it aside and renames it in under a lock; the others read it. Tests only read it."""
    from axolotl.utils.chat_templates import get_chat_template
    from filelock import FileLock

    from axolotl_multiturn.models.tiny import build_tiny_model

    root = shared_dir(tmp_path_factory)
    model = root / "tiny-model"
    with FileLock(str(root / "tiny-model.lock")):
        if not (model / "config.json").is_file():
            building = root / "tiny-model.building"
            build_tiny_model(building, get_chat_template("chatml"))
            building.rename(model)
    return model
