"""The pre-commit hooks: `check-multiturn-config` on example configs, and a real `pre-commit try-repo`
run of both hooks against a temporary dataset repo."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from axolotl_multiturn.hooks.check_multiturn_config import main as check_config

GOOD_CONFIG = {
    "base_model": "meta-llama/Llama-3.1-8B-Instruct",
    "plugins": ["axolotl_multiturn.MultiTurnPlugin"],
    "multiturn": {"masking": "auto", "auto": {"boilerplate_min_ratio": 1.5}},
    "datasets": [{"path": "data/train.jsonl", "type": "axolotl_multiturn.chat", "masking": "boilerplate",
                  "split": "train"}],
}


def write(tmp_path: Path, cfg: dict, name: str = "config.yml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_good_config_passes(tmp_path: Path, capsys) -> None:
    assert check_config([write(tmp_path, GOOD_CONFIG)]) == 0
    assert capsys.readouterr().out == ""


def test_unrelated_yaml_passes(tmp_path: Path) -> None:
    assert check_config([write(tmp_path, {"datasets": [{"path": "x", "type": "alpaca", "maskng": 1}]})]) == 0


@pytest.mark.parametrize(("change", "message"), [
    (lambda c: c["multiturn"].update(masking="instruct"),
     "multiturn.masking: 'instruct' is not one of none, instruction, boilerplate, auto, hosted_auto; did you mean 'instruction'?"),
    (lambda c: c["datasets"][0].update(maskng="none"),
     "datasets[0].maskng: unknown key for type axolotl_multiturn.chat; did you mean 'masking'?"),
    (lambda c: c["datasets"][0].update(last_turn_only="yes"),
     "datasets[0].last_turn_only: 'yes' is not of type 'boolean'"),
    (lambda c: c.update(plugins=[]),
     "plugins: add axolotl_multiturn.MultiTurnPlugin; without it axolotl drops the per-dataset keys"),
])
def test_config_mistakes(tmp_path: Path, capsys, change, message: str) -> None:
    cfg = yaml.safe_load(yaml.safe_dump(GOOD_CONFIG))
    change(cfg)
    path = write(tmp_path, cfg)
    assert check_config([path]) == 1
    assert capsys.readouterr().out.startswith(f"{path}: {message}")


def test_invalid_yaml_names_line_and_column(tmp_path: Path, capsys) -> None:
    path = tmp_path / "broken.yml"
    path.write_text("multiturn:\n  masking: [auto\n")
    assert check_config([str(path)]) == 1
    assert capsys.readouterr().out.startswith(f"{path}:3:1: invalid YAML:")


@pytest.mark.slow
def test_pre_commit_try_repo_in_a_dataset_repo(tmp_path: Path) -> None:
    """A dataset repo runs our hooks: a malformed line is rejected at file:line:col, a clean file passes,
    and the hook's own environment holds neither torch nor axolotl."""
    repo = tmp_path / "dataset-repo"
    repo.mkdir()
    shutil.copy(ROOT / "tests" / "examples" / "lint" / "good.jsonl", repo / "good.jsonl")
    shutil.copy(ROOT / "tests" / "examples" / "lint" / "good_preference.jsonl", repo / "pairs.jsonl")
    (repo / "bad_pairs.jsonl").write_text('{"prompt": [{"role": "user", "content": "hi"}], "chosen": [{"role": '
                                          '"assistant", "content": "a"}], "rejected": [{"role": "assistant", '
                                          '"content": "a"}]}\n')
    (repo / "bad.jsonl").write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", '
                                    '"content": "ok"}]}\n{"messages": [{"role": "user", "content": "hi"}, '
                                    '{"role": "user", "content": "again"}]}\n')
    (repo / "train.yml").write_text(yaml.safe_dump({**GOOD_CONFIG, "multiturn": {"masking": "al"}}))
    (repo / "good.yml").write_text(yaml.safe_dump(GOOD_CONFIG))
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"), "GIT_AUTHOR_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True, env=env)
    subprocess.run(["git", "add", "."], cwd=repo, check=True, env=env)

    def run(*files: str) -> subprocess.CompletedProcess:
        """Both hooks on `files`, each on the files it matches: one `try-repo`, so one hook environment to
        install (each call installs one)."""
        return subprocess.run([sys.executable, "-m", "pre_commit", "try-repo", str(ROOT), "--files", *files],
                              cwd=repo, env=env, capture_output=True, text=True, timeout=900)

    good = run("good.jsonl", "pairs.jsonl", "good.yml")  # pairs: one hook, the shape is detected per line
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.count("Passed") == 2
    bad = run("bad.jsonl", "bad_pairs.jsonl", "train.yml")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert bad.stdout.count("Failed") == 2
    assert "bad.jsonl:2:59: MT203 got 'user' after 'user', expected 'assistant'" in bad.stdout
    assert "bad.jsonl:2:14: MT204 no assistant message" in bad.stdout
    assert "bad_pairs.jsonl:1:113: MT404 chosen and rejected are the same message" in bad.stdout  # at rejected[0]
    assert "train.yml: multiturn.masking: 'al' is not one of none, instruction, boilerplate, auto" in bad.stdout


@pytest.mark.slow
def test_hook_install_pulls_neither_torch_nor_axolotl() -> None:
    """What `pip install .` (pre-commit's install of a hook repo) would put in a fresh environment."""
    report = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                             "--report", "-", str(ROOT)], capture_output=True, text=True, timeout=600, check=True)
    names = {item["metadata"]["name"].lower() for item in json.loads(report.stdout)["install"]}
    assert "axolotl-multiturn" in names
    assert not names & {"torch", "axolotl", "transformers", "datasets", "numpy"}
