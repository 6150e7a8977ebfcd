"""Everything a run checks and prepares before its first step, so bad input fails early."""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from fadtq.api import AdvantageEstimator
from fadtq.commands.reward import parse_name_list
from fadtq.errors import FadtqError
from fadtq.io import create_dir_once
from fadtq.judging import JUDGE_TEMPLATES
from fadtq.paths import cache_dir
from fadtq.plugin_manager import Plugins
from fadtq.prompts import POLICY_TEMPLATE, PromptLibrary
from fadtq.run_config import RunConfig, load_run_config

log = logging.getLogger("fadtq.train")
# Checkpoints the project's own `fadtq pretrain` made, each with its recipe and hash (pretrained/README.md).
SHIPPED_MODELS = Path(__file__).resolve().parents[2] / "pretrained"


@dataclass
class TrainArgs:
    config: str | None
    overrides: dict[str, str]
    resume: Path | None
    rewards: list[str] | None = None  # --rewards, applied after loading (plugin rewards need no term)


def parse_args(argv: Sequence[str]) -> TrainArgs:
    """``--config X``, ``--rewards a,b``, ``--resume RUN_DIR`` and ``--section.key value`` overrides."""
    parser = argparse.ArgumentParser(prog="fadtq/train.py")
    parser.add_argument("--config", help="config file or preset name (default: cpu_default)")
    parser.add_argument("--rewards", help="comma-separated active reward terms, e.g. format,accuracy,tq")
    parser.add_argument("--resume", type=Path, help="continue the run in this folder from its last checkpoint")
    parser.add_argument("--local_rank", type=int, default=-1, help=argparse.SUPPRESS)  # set by the launcher
    known, rest = parser.parse_known_args(argv)
    overrides = _overrides(rest)
    rewards = parse_name_list(known.rewards, "--rewards") if known.rewards else None
    if known.resume is not None:
        if known.config or overrides or rewards:
            raise FadtqError("--resume: takes the run's own config.yaml; give no --config, --rewards or overrides")
        if not (known.resume / "config.yaml").is_file():
            raise FadtqError(f"--resume {known.resume}: no config.yaml there (not a run folder)")
        return TrainArgs(str(known.resume / "config.yaml"), {}, known.resume)
    return TrainArgs(known.config, overrides, None, rewards)


def load_train_config(args: TrainArgs, plugins: Plugins) -> RunConfig:
    """The run's config: the file or preset, its overrides, then ``--rewards`` selected the way
    ``fadtq reward --rewards`` does, so a registered reward plugin that is not a configured term
    becomes an ungated term of weight 1 (and is saved as one in the run's config.yaml)."""
    cfg = load_run_config(args.config, args.overrides)
    if args.rewards:
        cfg.reward = cfg.reward.with_active(args.rewards, plugins.rewards.names())
    return cfg


def _overrides(rest: list[str]) -> dict[str, str]:
    overrides: dict[str, str] = {}
    i = 0
    while i < len(rest):
        flag = rest[i]
        if not flag.startswith("--") or len(flag) == 2:
            raise FadtqError(f"unexpected argument {flag!r}; overrides look like --section.key value")
        if "=" in flag:
            key, value = flag[2:].split("=", 1)
            i += 1
        elif i + 1 < len(rest):
            key, value = flag[2:], rest[i + 1]
            i += 2
        else:
            raise FadtqError(f"{flag}: missing value")
        overrides[key] = value
    return overrides


@dataclass
class StepPlan:
    world: int
    prompts_per_rank: int
    rollouts_per_rank: int
    micro_batches: int
    steps: int


def plan_steps(cfg: RunConfig, dataset_size: int, world: int) -> StepPlan:
    """How a step's global batch splits over ranks and micro-batches; errors name the keys."""
    r = cfg.rollout
    if r.prompts_per_step % world:
        raise FadtqError(f"rollout.prompts_per_step ({r.prompts_per_step}) must be divisible by the {world} ranks")
    per_rank = r.prompts_per_step // world
    rollouts = per_rank * r.group_size
    if rollouts % cfg.train.micro_batch_size:
        raise FadtqError(f"train.micro_batch_size ({cfg.train.micro_batch_size}) must divide the {rollouts} "
                         "rollouts per rank per step (prompts_per_step / ranks * group_size)")
    per_epoch = dataset_size // r.prompts_per_step
    if per_epoch == 0:
        raise FadtqError(f"rollout.prompts_per_step ({r.prompts_per_step}) exceeds the {dataset_size} training pairs")
    steps = per_epoch * cfg.train.epochs
    if cfg.train.max_steps is not None:
        steps = min(steps, cfg.train.max_steps)
    return StepPlan(world, per_rank, rollouts, rollouts // cfg.train.micro_batch_size, steps)


def check_model_path(path: str) -> str:
    """A local folder must hold a loadable config; anything else is tried as a hub id now, not
    after the data and the engine are set up."""
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FadtqError(f"model.path {path}: cannot load a model config ({reason})") from None
    return path


def default_model_dir(size: str, seed: int, warmup_steps: int, dataset) -> Path:
    """The offline Qwen2.5-VL of ``size``, built into the cache on first use and, when
    ``warmup_steps`` > 0, given the format warm-up (random answers: accuracy stays at chance)."""
    from fadtq.training.tiny_model import make_tiny_model
    from fadtq.training.warmup import warmup

    base = cache_dir() / "models" / f"qwen2.5-vl-{size}-seed{seed}"
    if not (base / "config.json").is_file():
        create_dir_once(base, lambda tmp: make_tiny_model(tmp / "model", size=size, seed=seed))
    if warmup_steps <= 0:
        return base
    warm = base.with_name(f"{base.name}-warmup{warmup_steps}")
    if not (warm / "config.json").is_file():
        create_dir_once(warm, lambda tmp: warmup(base, tmp / "model", dataset, steps=warmup_steps, seed=seed))
    return warm


def pretrained_model_dir(cfg: RunConfig) -> Path:
    """The policy of ``fadtq pretrain`` for the config's recipe: the checkpoint shipped in
    ``pretrained/`` when its recipe matches (its hash checked), else pretrained into the cache once."""
    from fadtq.training.pretrain import PretrainRecipe, build_pretrained, verify_shipped

    recipe = PretrainRecipe(size=cfg.model.size, steps=cfg.model.pretrain_steps, seed=cfg.model.pretrain_seed,
                            difficulty=cfg.data.synth_difficulty, image_size=cfg.data.image_size)
    shipped = SHIPPED_MODELS / recipe.folder_name()
    if (shipped / "config.json").is_file():
        return verify_shipped(shipped)
    cached = cache_dir() / "models" / recipe.folder_name()
    if not (cached / "config.json").is_file():
        log.info("pretraining %s into the cache (no shipped checkpoint has this recipe)", recipe.folder_name())
        build_pretrained(cached, recipe)
    return cached


def resolve_benchmark(cfg: RunConfig) -> Path:
    from fadtq.data.dataset import ensure_default_benchmark

    if not cfg.data.benchmark:
        return ensure_default_benchmark(scale=cfg.data.synth_scale, seed=cfg.data.seed,
                                        difficulty=cfg.data.synth_difficulty)
    path = Path(cfg.data.benchmark)
    if not (path / "train.jsonl").is_file():
        raise FadtqError(f"data.benchmark {path}: no train.jsonl there (build one with fadtq build-benchmark)")
    return path


def make_run_dir(cfg: RunConfig, config_name: str) -> Path:
    name = cfg.output.name or f"{Path(config_name).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = Path(cfg.output.dir) / name
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def run_metadata(cfg: RunConfig, prompts: PromptLibrary, plugins: Plugins, estimator: AdvantageEstimator,
                 model_path: str, benchmark: Path, plan: StepPlan) -> dict:
    """What a reader of the run needs beyond its config: template hashes, plugin providers."""
    templates = (POLICY_TEMPLATE, *JUDGE_TEMPLATES)
    return {
        "template_hashes": {name: prompts.template_hash(name) for name in templates},
        "providers": {
            "advantage": plugins.advantages.provider(estimator.name),
            "judge": plugins.judges.provider(cfg.judge.name),
            **{f"reward/{t.reward}": plugins.rewards.provider(t.reward) for t in cfg.reward.terms.values() if t.reward},
        },
        "model_path": model_path,
        "benchmark": str(benchmark),
        "loss": estimator.loss,
        "reference_model": estimator.needs_reference,
        "plan": asdict(plan),
        "torch": torch.__version__,
    }
