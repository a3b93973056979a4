"""`axolotl-multiturn compare CONFIG --seeds 0,1,2` for a config with `test_datasets`: masking modes on a real
model, each trained by `axolotl train` as the config says (LoRA and all) and scored by `eval` on the held-out
conversations.

One run per (mode, seed), each in its own folder under `OUTPUT_DIR/compare/` (its config, adapter and scores):
a run whose folder already holds the scores of the same config is not trained again, so an interrupted
comparison resumes. Two modes that give the same labelled rows on the training data (on CoQA `hosted_auto`
is `instruction` and `auto` is `boilerplate`) train the same model: the second is not trained again and the
table says so. The table: trained tokens, the held-out CoQA F1 (mean, standard deviation and range over the
seeds), exact match, the share of answers that stop by themselves and their length, beside the untrained
model's.
"""

from __future__ import annotations

import hashlib
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml
from rich.console import Console
from rich.table import Table

from axolotl_multiturn.evaluation.report import Scores, scores_from_json, to_json
from axolotl_multiturn.files import written_whole

IGNORE = -100
SCORES = "scores.json"


@dataclass(frozen=True)
class ModeResult:
    mode: str  # as asked, with what `auto` chose: "auto (boilerplate)"
    same_as: str | None  # an earlier mode with the same labelled rows, whose runs these are
    trained_tokens: int
    tokens: int
    seeds: tuple[Scores, ...]

    def mean(self, field: str) -> float:
        return statistics.fmean(getattr(s, field) for s in self.seeds)

    def spread(self, field: str) -> float:
        values = [getattr(s, field) for s in self.seeds]
        return statistics.stdev(values) if len(values) > 1 else 0.0


def run_config(config: Path, mode: str, seed: int, run: Path) -> str:
    """The config's YAML with masking `mode`, `seed`, the run's own output folder and prepared copy."""
    data = yaml.safe_load(config.read_text())
    data.setdefault("multiturn", {})["masking"] = mode
    for entry in data.get("datasets") or []:
        if "masking" in entry:
            entry["masking"] = mode
    data["seed"] = seed
    data["output_dir"] = str(run / "adapter")
    data["dataset_prepared_path"] = str(run.parent / f"prepared-{mode}")
    return yaml.safe_dump(data, sort_keys=False)


def labels_digest(rows: Sequence[tuple[list[int], list[int]]]) -> str:
    digest = hashlib.sha256()
    for ids, labels in rows:
        digest.update(orjson.dumps([ids, labels]))
    return digest.hexdigest()


def trained_run(config: Path, mode: str, seed: int, root: Path, console: Console) -> Scores:
    """Train (unless this run's folder holds the scores of the same config) and score one run."""
    from axolotl_multiturn.evaluation.heldout import evaluate
    from axolotl_multiturn.evaluation.runs import axolotl

    run = root / f"{mode}-seed{seed}"
    text = run_config(config, mode, seed, run)
    scores = run / SCORES
    if scores.is_file():
        kept = orjson.loads(scores.read_bytes())
        if kept.get("run_config") == text:
            console.print(f"{mode} seed {seed}: scored before, in {scores}")
            return scores_from_json(kept)
    run.mkdir(parents=True, exist_ok=True)
    with written_whole(run / "config.yml") as stream:
        stream.write(text.encode())
    console.print(f"[bold]{mode} seed {seed}[/]: axolotl train {run / 'config.yml'}")
    axolotl("train", run / "config.yml", console)
    result = evaluate(run / "config.yml", str(run / "adapter"), console=console)
    with written_whole(scores) as stream:
        stream.write(orjson.dumps(to_json(result, run_config=text), option=orjson.OPT_INDENT_2))
    return Scores.of(result)


def compare_heldout(
    config: str | Path, modes: Sequence[str], seeds: Sequence[int], console: Console | None = None
) -> tuple[Scores, list[ModeResult]]:
    """(the untrained model's scores, one result per mode)."""
    from axolotl_multiturn.evaluation.heldout import evaluate
    from axolotl_multiturn.reports.compare import labelled_rows, strategy_for
    from axolotl_multiturn.reports.preview import load_config

    console = console or Console(highlight=False)
    config = Path(config)
    cfg, tokenizer, ds_cfg, raw = load_config(config)
    root = Path(cfg.output_dir) / "compare"
    indices = list(range(len(raw)))
    labelled: dict[str, tuple[str, str, int, int]] = {}  # mode -> (name, digest, trained, tokens)
    for mode in modes:
        strategy = strategy_for(tokenizer, cfg, ds_cfg, raw, mode)
        rows = labelled_rows(strategy, raw, indices)
        name = mode if mode == strategy.mode.value else f"{mode} ({strategy.mode.value})"
        trained = sum(sum(1 for label in labels if label != IGNORE) for _, labels in rows)
        labelled[mode] = (name, labels_digest(rows), trained, sum(len(ids) for ids, _ in rows))
    first: dict[str, str] = {}  # digest -> the first mode that gives it
    for mode, (_, digest, _, _) in labelled.items():
        first.setdefault(digest, mode)

    base = root / "base"
    base.mkdir(parents=True, exist_ok=True)
    if (base / SCORES).is_file():
        before = scores_from_json(orjson.loads((base / SCORES).read_bytes()))
    else:
        console.print(f"[bold]untrained[/]: {cfg.base_model}")
        result = evaluate(config, console=console)
        with written_whole(base / SCORES) as stream:
            stream.write(orjson.dumps(to_json(result, model=str(cfg.base_model)), option=orjson.OPT_INDENT_2))
        before = Scores.of(result)

    distinct = list(dict.fromkeys(first.values()))
    planned = [(mode, seed) for mode in distinct for seed in seeds]
    start = time.monotonic()
    runs: dict[str, list[Scores]] = {mode: [] for mode in distinct}
    for k, (mode, seed) in enumerate(planned):
        elapsed = time.monotonic() - start
        left = f", about {elapsed / k * (len(planned) - k) / 60:.0f} min left" if k else ""
        console.rule(f"run {k + 1}/{len(planned)}: {mode}, seed {seed} ({elapsed / 60:.0f} min so far{left})")
        runs[mode].append(trained_run(config, mode, seed, root, console))
    results = []
    for mode, (name, digest, trained, tokens) in labelled.items():
        source = first[digest]
        results.append(ModeResult(name, None if source == mode else source, trained, tokens, tuple(runs[source])))
    return before, results


def table(before: Scores, results: Sequence[ModeResult], title: str) -> Table:
    out = Table("mode", "trained tokens", "held-out F1", "F1 by seed", "exact match", "stopped", "words", title=title)
    out.add_row(
        "untrained", "", f"{before.f1:.3f}", "", f"{before.exact:.3f}", f"{before.stopped:.0%}", f"{before.words:.1f}"
    )
    for r in results:
        out.add_row(*row_cells(r))
    return out


def row_cells(r: ModeResult) -> list[str]:
    f1s = [s.f1 for s in r.seeds]
    return [
        r.mode + (f" = {r.same_as}" if r.same_as else ""),
        f"{r.trained_tokens:,} of {r.tokens:,}",
        f"{r.mean('f1'):.3f} ± {r.spread('f1'):.3f} ({min(f1s):.3f}-{max(f1s):.3f})",
        " ".join(f"{v:.3f}" for v in f1s),
        f"{r.mean('exact'):.3f}",
        f"{r.mean('stopped'):.0%}",
        f"{r.mean('words'):.1f}",
    ]


def markdown(before: Scores, results: Sequence[ModeResult]) -> str:
    """The table as Markdown, for docs/masking.md."""
    header = [
        "mode",
        "trained tokens",
        "held-out F1 (mean ± sd, range)",
        "F1 by seed",
        "exact match",
        "stopped",
        "words",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.append(
        f"| untrained | | {before.f1:.3f} | | {before.exact:.3f} | {before.stopped:.0%} | {before.words:.1f} |"
    )
    lines += ["| " + " | ".join(row_cells(r)) + " |" for r in results]
    return "\n".join(lines) + "\n"


def to_dict(before: Scores, results: Sequence[ModeResult], seeds: Sequence[int]) -> dict[str, Any]:
    return {
        "seeds": list(seeds),
        "untrained": asdict(before),
        "modes": [{**asdict(r), "seeds": [asdict(s) for s in r.seeds]} for r in results],
    }
