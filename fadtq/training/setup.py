"""Everything a run checks and prepares before its first step, so bad input fails early."""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from fadtq.api import AdvantageEstimator, RolloutEngineFactory
from fadtq.cli import Parser
from fadtq.commands.reward import parse_name_list
from fadtq.config import Origins
from fadtq.data.dataset import PairDataset, resolve_benchmark
from fadtq.errors import ConfigError, FadtqError
from fadtq.files import check_output_dir, create_dir_once
from fadtq.paths import cache_dir, missing_local_folder
from fadtq.plugin_manager import Plugins, default_plugins
from fadtq.preflight import check_scoring, decode_images, render_templates
from fadtq.prompts import POLICY_TEMPLATE, PromptLibrary
from fadtq.run_config import RunConfig, check_plugins, load_run_config_traced
from fadtq.scoring import Scorer, build_scorer

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
    parser = Parser(prog="fadtq/train.py")
    parser.add_argument("--config", help="config file or preset name (default: cpu_default)")
    parser.add_argument("--rewards", help="comma-separated active reward terms, e.g. format,accuracy,tq")
    parser.add_argument("--resume", type=Path, help="continue the run in this folder from its last checkpoint")
    parser.add_argument("--local_rank", type=int, default=-1, help=argparse.SUPPRESS)  # set by the launcher
    known, rest = parser.parse_known_args(argv)
    overrides = _overrides(rest)
    rewards = parse_name_list(known.rewards, "--rewards") if known.rewards is not None else None
    if known.resume is not None:
        if known.config or overrides or rewards:
            raise FadtqError("--resume: takes the run's own config.yaml; give no --config, --rewards or overrides")
        if not (known.resume / "config.yaml").is_file():
            raise FadtqError(f"--resume {known.resume}: no config.yaml there (not a run folder)")
        return TrainArgs(str(known.resume / "config.yaml"), {}, known.resume)
    return TrainArgs(known.config, overrides, None, rewards)


def load_train_config(args: TrainArgs, plugins: Plugins) -> tuple[RunConfig, Origins]:
    """The run's config and where its keys came from: the file or preset, its overrides, then
    ``--rewards`` selected the way ``fadtq reward --rewards`` does, so a registered reward plugin
    that is not a configured term becomes an ungated term of weight 1 (and is saved as one in the
    run's config.yaml)."""
    cfg, origins = load_run_config_traced(args.config, args.overrides)
    if args.rewards:
        cfg.reward = cfg.reward.with_active(args.rewards, plugins.rewards.names())
    return cfg, origins


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
        if key in overrides:
            raise FadtqError(f"--{key}: given twice")
        overrides[key] = value
    return overrides


@dataclass
class StepPlan:
    world: int
    prompts_per_rank: int
    rollouts_per_rank: int
    micro_batch_size: int  # train.micro_batch_size, or the rollouts per rank when they are fewer
    micro_batches: int
    steps: int


def plan_steps(cfg: RunConfig, dataset_size: int, world: int) -> StepPlan:
    """How a step's global batch splits over ranks and micro-batches; errors name the keys."""
    r = cfg.rollout
    if r.prompts_per_step % world:
        raise ConfigError("rollout.prompts_per_step", f"{r.prompts_per_step} does not divide over the {world} ranks")
    per_rank = r.prompts_per_step // world
    rollouts = per_rank * r.group_size
    micro = min(cfg.train.micro_batch_size, rollouts)  # an upper bound: fewer rollouts make one micro-batch
    if rollouts % micro:
        raise ConfigError("train.micro_batch_size", f"{cfg.train.micro_batch_size} does not divide the {rollouts} "
                          "rollouts per rank per step (prompts_per_step / ranks * group_size)")
    per_epoch = dataset_size // r.prompts_per_step
    if per_epoch == 0:
        raise ConfigError("rollout.prompts_per_step", f"{r.prompts_per_step} exceeds the {dataset_size} training pairs")
    steps = per_epoch * cfg.train.epochs
    if cfg.train.max_steps is not None:
        steps = min(steps, cfg.train.max_steps)
    return StepPlan(world, per_rank, rollouts, micro, rollouts // micro, steps)


def check_model_path(path: str) -> str:
    """A local folder must hold a loadable config; anything else is tried as a hub id now, not
    after the data and the engine are set up."""
    from transformers import AutoConfig

    if missing_local_folder(path):
        raise ConfigError("model.path", f"{path}: no such folder")
    try:
        AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError("model.path", f"{path}: cannot load a model config ({reason})") from None
    return path


def policy_config(cfg: RunConfig) -> tuple[dict, str]:
    """The policy's config as a dict and where it comes from, before any model is built or loaded."""
    from transformers import AutoConfig

    from fadtq.training.tiny_model import preset_config

    if cfg.model.path:
        return AutoConfig.from_pretrained(cfg.model.path).to_dict(), f"model.path {cfg.model.path}"
    return preset_config(cfg.model.size), f"model.size {cfg.model.size}"


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
    from fadtq.training.pretrain import build_pretrained, recipe_from_config, verify_shipped

    recipe = recipe_from_config(cfg)
    shipped = SHIPPED_MODELS / recipe.folder_name()
    if (shipped / "config.json").is_file():
        return verify_shipped(shipped, recipe)
    cached = cache_dir() / "models" / recipe.folder_name()
    if not (cached / "config.json").is_file():
        log.info("pretraining %s into the cache (no shipped checkpoint has this recipe)", recipe.folder_name())
        build_pretrained(cached, recipe)
    return cached


def training_benchmark(cfg: RunConfig) -> Path:
    """The benchmark folder of ``data.benchmark`` (it must hold train.jsonl), else the config's look-alike."""
    return resolve_benchmark(cfg.data.benchmark, "train", "data.benchmark", scale=cfg.data.synth_scale,
                             seed=cfg.data.seed, difficulty=cfg.data.synth_difficulty)[0]


def new_run_dir(cfg: RunConfig, config_name: str) -> Path:
    """The folder of a new run: checked here, created by the trainer once the model is ready."""
    name = cfg.output.name or f"{Path(config_name).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = check_output_dir(Path(cfg.output.dir) / name, "output.dir")
    if run_dir.is_dir() and any(run_dir.iterdir()):
        raise ConfigError("output.name", f"{run_dir} already holds a run; choose another name, or continue "
                          f"that run with --resume {run_dir}")
    return run_dir


@dataclass
class Prepared:
    """What the preflight checked and built, for the trainer to use."""

    plugins: Plugins
    estimator: AdvantageEstimator
    prompts: PromptLibrary
    scorer: Scorer
    model_path: str | None
    benchmark: Path
    dataset: PairDataset  # every image decoded
    plan: StepPlan  # for the launcher's world size


def preflight(cfg: RunConfig) -> Prepared:
    """Everything a run checks before a model loads or its folder exists: plugins, templates,
    the reward composition on sample rollouts, the judge, the model path, the data (every image
    decoded) and the step plan."""
    plugins = default_plugins()
    check_plugins(cfg, plugins)
    estimator = plugins.advantages.get(cfg.advantage.name)
    prompts = PromptLibrary(cfg.prompts_dir)
    render_templates(prompts, [POLICY_TEMPLATE])
    model_path = check_model_path(cfg.model.path) if cfg.model.path else None
    engine = plugins.engines.get(cfg.rollout.engine)
    if engine.check is not None:
        engine.check(*policy_config(cfg))
    check_span_top_p(cfg, engine)
    benchmark, dataset, plan = prepare_data(cfg, prompts)
    scorer = build_scorer(cfg.reward, cfg.judge, plugins, prompts)
    check_scoring(scorer, cfg.judge, plugins, prompts, estimator, cfg.advantage.options)
    return Prepared(plugins, estimator, prompts, scorer, model_path, benchmark, dataset, plan)


def check_span_top_p(cfg: RunConfig, engine: RolloutEngineFactory) -> None:
    """Refuse per-span top-p thresholds to an engine that samples every token with ``rollout.top_p``."""
    from fadtq.generation.span_top_p import thresholds_apart

    apart = [f"rollout.{name}" for name in thresholds_apart(cfg.rollout)]
    if apart and not engine.honours_span_top_p:
        raise ConfigError(apart[0], f"the {engine.name} engine samples every token with rollout.top_p; set "
                          f"{' and '.join(apart)} to null (the CPU default sets both), or use an engine that "
                          "honours them (hf)")


def prepare_data(cfg: RunConfig, prompts: PromptLibrary) -> tuple[Path, PairDataset, StepPlan]:
    """The training pairs, every image decoded, and the step plan that checks a step fits them and
    the ranks (the launcher's ``WORLD_SIZE``: the process group does not exist yet)."""
    benchmark = training_benchmark(cfg)
    dataset = PairDataset(benchmark / "train.jsonl", cfg.data.loco_root, max_side=cfg.data.image_size,
                          prompts=prompts)
    plan = plan_steps(cfg, len(dataset), int(os.environ.get("WORLD_SIZE", "1")))
    decode_images(dataset, dataset.rows, "checking images")
    return benchmark, dataset, plan


def run_metadata(cfg: RunConfig, prompts: PromptLibrary, plugins: Plugins, estimator: AdvantageEstimator,
                 model_path: str, benchmark: Path, plan: StepPlan) -> dict:
    """What a reader of the run needs beyond its config: hashes of the templates the run renders
    (the judge's only when it has some and a term asks it), plugin providers."""
    return {
        "template_hashes": {name: prompts.template_hash(name) for name in sorted(prompts.rendered)},
        "providers": {
            "advantage": plugins.advantages.provider(estimator.name),
            "loss": plugins.losses.provider(estimator.loss),
            "rollout_engine": plugins.engines.provider(cfg.rollout.engine),
            "judge": plugins.judges.provider(cfg.judge.name),
            **{f"reward/{t.reward}": plugins.rewards.provider(t.reward) for t in cfg.reward.terms.values() if t.reward},
        },
        "model_path": model_path,
        "benchmark": str(benchmark),
        "loss": estimator.loss,
        "reference_model": plugins.losses.get(estimator.loss).needs_reference,
        "plan": asdict(plan),
        "torch": torch.__version__,
    }
