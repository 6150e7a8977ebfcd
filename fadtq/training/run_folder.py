"""A run's folder: chosen and checked before any work, created once the trainer is assembled.

``config.yaml`` (the resolved config, what ``--resume`` reads), ``metadata.json`` (template hashes,
plugin providers, the model and benchmark, the step plan), ``metrics.jsonl``, ``samples.jsonl``,
``tensorboard/``, ``checkpoints/`` and ``final``, a link to the last checkpoint's policy.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
import yaml

from fadtq.errors import ConfigError
from fadtq.files import (atomic_write_json, atomic_write_jsonl, atomic_write_text, check_output_dir, drop_partial_last_line,
                         entries, listed, read_jsonl)
from fadtq.folder_lock import LOCK_FILE, live_holder
from fadtq.run_config import RunConfig
from fadtq.training import checkpoint
from fadtq.training.preflight import Prepared

LOGS = ("metrics.jsonl", "samples.jsonl")


def new_run_dir(cfg: RunConfig, config_name: str) -> Path:
    """The folder of a new run: checked here, created by the builder once the model is ready."""
    name = cfg.output.name or f"{Path(config_name).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = check_output_dir(Path(cfg.output.dir) / name, "output.dir")
    # a folder a running run holds: the lock names its holder (fadtq.folder_lock)
    held = entries(run_dir, besides=(LOCK_FILE,))
    if held and live_holder(run_dir) is None:
        if (run_dir / "config.yaml").is_file():
            raise ConfigError("output.name", f"{run_dir} already holds a run; choose another name, or continue "
                              f"that run with --resume {run_dir}")
        raise ConfigError("output.name", f"{run_dir} holds other files ({listed(held)}), not a run; choose another "
                          "name or an empty folder")
    return run_dir


def with_absolute_paths(cfg: RunConfig) -> RunConfig:
    """``cfg`` with its local paths absolute (a hub id stays as it is): ``--resume`` and ``fadtq eval``
    of the run then work from any folder."""
    def absolute(path: str | None) -> str | None:
        return path if path is None or not Path(path).exists() else str(Path(path).resolve())

    return replace(cfg, prompts_dir=absolute(cfg.prompts_dir), model=replace(cfg.model, path=absolute(cfg.model.path)),
                   data=replace(cfg.data, benchmark=absolute(cfg.data.benchmark), loco_root=absolute(cfg.data.loco_root)),
                   output=replace(cfg.output, dir=str(Path(cfg.output.dir).resolve())))


def create_run_dir(run_dir: Path, cfg: RunConfig, prepared: Prepared, model_path: str, rank: int) -> None:
    """The folder with its ``config.yaml`` (paths absolute) and ``metadata.json`` (rank 0 writes them)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(asdict(with_absolute_paths(cfg)), sort_keys=False))
        atomic_write_json(run_dir / "metadata.json", run_metadata(cfg, prepared, model_path))


def run_metadata(cfg: RunConfig, prepared: Prepared, model_path: str) -> dict:
    """What a reader of the run needs beyond its config: hashes of the templates the run renders
    (the judge's only when it has some and a term asks it), plugin providers."""
    plugins, estimator = prepared.plugins, prepared.estimator
    return {
        "template_hashes": {name: prepared.prompts.template_hash(name) for name in sorted(prepared.prompts.rendered)},
        "providers": {
            "advantage": plugins.advantages.provider(estimator.name),
            "loss": plugins.losses.provider(estimator.loss),
            "rollout_engine": plugins.engines.provider(cfg.rollout.engine),
            "judge": plugins.judges.provider(cfg.judge.name),
            **{f"reward/{t.reward}": plugins.rewards.provider(t.reward) for t in cfg.reward.terms.values() if t.reward},
        },
        "model_path": model_path,
        "benchmark": str(prepared.benchmark),
        "loss": estimator.loss,
        # a loss that needs a reference gets a frozen copy, or with adapters the policy's base
        "reference_model": plugins.losses.get(estimator.loss).needs_reference and not cfg.train.lora.rank,
        "reference": (None if not plugins.losses.get(estimator.loss).needs_reference
                      else "base with adapters off" if cfg.train.lora.rank else "frozen copy"),
        "plan": asdict(prepared.plan),
        "torch": torch.__version__,
    }


def truncate_logs(run_dir: Path, step: int) -> None:
    """Drop the logs' rows from ``step`` on (and a torn last line): a resumed run redoes them."""
    for name in LOGS:
        path = run_dir / name
        if path.is_file():
            drop_partial_last_line(path)
            atomic_write_jsonl(path, [row for _, row in read_jsonl(path) if row.get("step", 0) < step])


def link_final(run_dir: Path, steps: int) -> None:
    """``final`` -> the policy of the checkpoint after ``steps`` steps."""
    link = run_dir / "final"
    link.unlink(missing_ok=True)
    link.symlink_to(Path("checkpoints") / checkpoint.step_dir(run_dir, steps).name / "policy")
