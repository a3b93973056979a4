"""The CoQA workflow's configs, validated by axolotl's own config loader.

`make demo` itself is not run here: CI runs it (its third step, the behavioural test of the real model), and
the demo fails by its exit status when any step fails or its trained model falls short
(`axolotl_multiturn/demo/real.py`: the held-out CoQA F1 must rise by `F1_GAIN` and the answers stop by
themselves at `STOPPED_FLOOR` or more; `demo/tiny.py`, `make demo-tiny`: the loss must fall to under a quarter,
at least 4 of its 6 answers exact and 5 stopped by end-of-turn)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import ROOT

pytestmark = pytest.mark.axolotl


def validated(tmp_path: Path, tiny_model: Path, name: str, monkeypatch, **env: str):
    from axolotl.cli.config import load_cfg

    for key in ("WANDB_PROJECT", "WANDB_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    cfg = yaml.safe_load((ROOT / "example_configs" / name).read_text())
    if cfg.get("deepspeed"):  # validated as shipped; deepspeed itself is not installed here, so axolotl's
        # environment set-up for it (which imports it) is left out, and the path is made absolute
        monkeypatch.setattr("axolotl.utils.trainer.setup_deepspeed_env", lambda cfg, stage=None: None)
        cfg["deepspeed"] = str(ROOT / cfg["deepspeed"])
    cfg["base_model"] = str(tiny_model)  # the real model is not reachable offline; the rest is as shipped
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return load_cfg(str(path))


@pytest.mark.parametrize("name", ["coqa.yml", "coqa-multigpu.yml", "coqa-deepspeed.yml"])
def test_coqa_configs_are_the_hosted_job(tmp_path: Path, tiny_model: Path, name: str, monkeypatch) -> None:
    cfg = validated(tmp_path, tiny_model, name, monkeypatch)
    assert (cfg.num_epochs, cfg.learning_rate, cfg.warmup_ratio, cfg.adapter) == (3, 1e-5, 0.0, "lora")
    assert (cfg.save_strategy, cfg.save_total_limit) == ("epoch", 1)
    assert cfg.datasets[0].type == "axolotl_multiturn.chat"
    assert cfg.datasets[0].conversation == 'axolotl_multiturn:{"masking": "hosted_auto"}'  # train_on_inputs=auto
    assert not cfg.use_wandb
    # FSDP is on where fsdp_config is set (axolotl 0.21 defaults fsdp_version to 2 for every config)
    assert (bool(cfg.fsdp_config) and cfg.fsdp_version == 2) == (name == "coqa-multigpu.yml")
    assert (cfg.deepspeed or {}).get("zero_optimization") == ({"stage": 2, "overlap_comm": True,
                                                               "contiguous_gradients": True}
                                                              if name == "coqa-deepspeed.yml" else None)


@pytest.mark.parametrize("name", ["coqa-dpo.yml", "coqa-dpo-tiny.yml", "coqa-smollm2-dpo.yml"])
def test_coqa_dpo_configs_train_exact_pairs(tmp_path: Path, tiny_model: Path, name: str, monkeypatch) -> None:
    """Both DPO configs validate as shipped, and the plugin names the trainer that takes exact pairs."""
    cfg = validated(tmp_path, tiny_model, name, monkeypatch)
    assert (cfg.rl, cfg.trainer_cls) == ("dpo", "axolotl_multiturn.integration.trainer.ExactPairsDPOTrainer")
    assert cfg.datasets[0].type == "axolotl_multiturn.chat"
    assert cfg.adapter == (None if name == "coqa-dpo-tiny.yml" else "lora")


def test_the_real_model_config_is_the_hosted_job_on_a_cpu(tmp_path: Path, tiny_model: Path, monkeypatch) -> None:
    """`make demo`'s config: the hosted job's LoRA and masking, held-out stories as test_datasets, float32,
    no GPU kernels; 2 epochs at 3e-4 (the README's three seeds were measured with these)."""
    cfg = validated(tmp_path, tiny_model, "coqa-smollm2.yml", monkeypatch)
    assert (cfg.adapter, cfg.lora_r, cfg.lora_alpha, cfg.lora_target_linear) == ("lora", 16, 32, True)
    assert (cfg.num_epochs, cfg.learning_rate, cfg.micro_batch_size) == (2, 3e-4, 2)
    assert (cfg.lora_mlp_kernel, cfg.lora_qkv_kernel, cfg.lora_o_kernel, cfg.bf16, cfg.fp16) == (False,) * 5
    assert [d.path for d in cfg.test_datasets] == ["demo/coqa-heldout.jsonl"]
    assert yaml.safe_load((ROOT / "example_configs" / "coqa-smollm2.yml").read_text())["multiturn"] == {
        "masking": "hosted_auto"}


def test_wandb_turns_on_from_the_environment(tmp_path: Path, tiny_model: Path, monkeypatch) -> None:
    cfg = validated(tmp_path, tiny_model, "coqa.yml", monkeypatch, WANDB_PROJECT="coqa", WANDB_API_KEY="k")
    assert (cfg.wandb_project, cfg.use_wandb) == ("coqa", True)
