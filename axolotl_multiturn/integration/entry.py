"""What one dataset entry of an axolotl config names, beyond our options: its chat template, how axolotl
samples its rows, and the key and folder its summary is kept under between preprocessing and training.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
from axolotl.utils.chat_templates import get_chat_template
from transformers import PreTrainedTokenizerBase

from axolotl_multiturn.integration.options import CARRIER_KEY, carried, resolve

FALLBACK_TEMPLATE = "tokenizer_default_fallback_chatml"
DEFAULT_PREPARED = "last_run_prepared"  # axolotl's dataset_prepared_path when the config sets none


def template_choice(cfg: Mapping[str, Any], ds_cfg: Mapping[str, Any]) -> tuple[str, str | None]:
    """axolotl's `chat_template` name (`jinja` for `chat_template_jinja`) and the Jinja text, if given."""
    source = ds_cfg if ds_cfg.get("chat_template") or ds_cfg.get("chat_template_jinja") else cfg
    jinja = source.get("chat_template_jinja")
    return source.get("chat_template") or ("jinja" if jinja else FALLBACK_TEMPLATE), jinja


def resolve_chat_template(tokenizer: PreTrainedTokenizerBase, cfg: Mapping[str, Any], ds_cfg: Mapping[str, Any]) -> str:
    """axolotl's own `chat_template` / `chat_template_jinja` keys; chatml when the model has none."""
    choice, jinja = template_choice(cfg, ds_cfg)
    return get_chat_template(choice, jinja_template=jinja, tokenizer=tokenizer)


def sampling(ds_cfg: Mapping[str, Any]) -> str:
    """How axolotl samples the dataset's rows before the strategy sees them ("" when it keeps them all)."""
    weight, shards = ds_cfg.get("weight"), ds_cfg.get("shards")
    return ", ".join(
        [
            *([f"weight {weight}"] if weight is not None and weight < 1 else []),
            *([f"shards {shards}"] if shards else []),
        ]
    )


#: The dataset entry's fields that decide what it holds (with the file's size and time, for a local file).
KEY_FIELDS = (
    "path",
    "name",
    "split",
    "data_files",
    "revision",
    "field_messages",
    "ds_type",
    "chat_template",
    "chat_template_jinja",
    "weight",
    "shards",
    "shards_idx",
    CARRIER_KEY,
)


def summary_key(tokenizer: PreTrainedTokenizerBase, cfg: Mapping[str, Any], ds_cfg: Mapping[str, Any]) -> str:
    """What a dataset's summary depends on, hashed: the entry, the file, the options, the template and the
    tokenizer. Preprocessing keeps the summary under it; the plugin finds it there at training start."""
    path = Path(str(ds_cfg.get("path") or ""))
    stat = path.stat() if path.is_file() else None
    parts = {
        "dataset": {k: ds_cfg.get(k) for k in KEY_FIELDS},
        "file": stat and [stat.st_size, stat.st_mtime_ns],
        "options": repr(resolve(cfg, ds_cfg, where=str(path))),
        "sequence_len": cfg.get("sequence_len"),
        "template": resolve_chat_template(tokenizer, cfg, ds_cfg),
        "eot": cfg.get("eot_tokens"),
        "kwargs": cfg.get("chat_template_kwargs"),
        "tokenizer": [tokenizer.name_or_path, len(tokenizer)],
    }
    return hashlib.sha256(orjson.dumps(parts, default=str, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def summary_directory(cfg: Mapping[str, Any], ds_cfg: Mapping[str, Any]) -> Path | None:
    """Beside axolotl's prepared datasets, for entries the plugin prepared (an axolotl run); None for
    direct callers, whose summary stays in the process."""
    if not carried(ds_cfg):
        return None
    return Path(str(cfg.get("dataset_prepared_path") or DEFAULT_PREPARED))


def image_folder(ds_cfg: Mapping[str, Any]) -> Path:
    """The folder an entry's image paths are relative to: its JSONL file's (as the linter reads them), or
    its folder; the working directory for datasets that are not local files."""
    path = Path(str(ds_cfg.get("path") or ""))
    return path.parent if path.is_file() else path if path.is_dir() else Path.cwd()


def load_processor(cfg: Mapping[str, Any], tokenizer: PreTrainedTokenizerBase) -> Any:
    """A vision-language model's processor, as axolotl loads one (`processor_config`, else the base model),
    over the tokenizer axolotl loaded (its added tokens included)."""
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(
        str(cfg.get("processor_config") or cfg.get("base_model_config") or cfg.get("base_model")),
        tokenizer=tokenizer,
        trust_remote_code=bool(cfg.get("trust_remote_code")),
    )
