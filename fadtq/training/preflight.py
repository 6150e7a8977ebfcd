"""Everything a run checks and prepares before a model loads or its folder exists, so bad input
fails early: plugins, templates, the reward composition, the judge, the model's path and family,
the data (every image decoded) and the step plan."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from fadtq.api import AdvantageEstimator, RolloutEngineFactory
from fadtq.data.dataset import PairDataset, decode_images, resolve_benchmark
from fadtq.errors import ConfigError
from fadtq.generation.sampling import spans_apart
from fadtq.paths import missing_local_folder
from fadtq.plugin_manager import Plugins, default_plugins
from fadtq.policy.family import family_of_config
from fadtq.policy.weights_file import weights_problem
from fadtq.prompts import POLICY_TEMPLATE, PromptLibrary
from fadtq.run_config import RunConfig, check_plugins
from fadtq.scoring import Scorer, build_scorer
from fadtq.scoring_checks import check_scoring, render_templates
from fadtq.training.step_plan import StepPlan, plan_steps
from fadtq.training.trackers import check_loggers


def policy_config(cfg: RunConfig) -> tuple[dict, str]:
    """The policy's config as a dict and where it comes from, before any model is built or loaded.
    A local folder must hold a loadable config; anything else is tried as a hub id now, not after
    the data and the engine are set up."""
    from transformers import AutoConfig

    from fadtq.pretraining.tiny_model import preset_config

    path = cfg.model.path
    if not path:
        return preset_config(cfg.model.size), f"model.size {cfg.model.size}"
    if missing_local_folder(path):
        raise ConfigError("model.path", f"{path}: no such folder")
    try:
        config = AutoConfig.from_pretrained(path).to_dict()
    except (OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError("model.path", f"{path}: cannot load a model config ({reason})") from None
    problem = weights_problem(path) if Path(path).is_dir() else None
    if problem:
        raise ConfigError("model.path", problem)
    return config, f"model.path {path}"


def training_benchmark(cfg: RunConfig) -> Path:
    """The benchmark folder of ``data.benchmark`` (it must hold train.jsonl), else the config's look-alike."""
    return resolve_benchmark(cfg.data.benchmark, "train", "data.benchmark", scale=cfg.data.synth_scale,
                             seed=cfg.data.seed, difficulty=cfg.data.synth_difficulty)[0]


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
    """Every check, in the order that fails cheapest first; the model family is known before any
    model loads."""
    plugins = default_plugins()
    check_plugins(cfg, plugins)
    estimator = plugins.advantages.get(cfg.advantage.name)
    prompts = PromptLibrary(cfg.prompts_dir)
    render_templates(prompts, [POLICY_TEMPLATE])
    model_config = policy_config(cfg)
    family_of_config(*model_config)
    engine = plugins.engines.get(cfg.rollout.engine)
    if engine.check is not None:
        engine.check(*model_config)
    check_span_top_p(cfg, engine)
    check_loggers(cfg.output.loggers, "output.loggers")
    benchmark, dataset, plan = prepare_data(cfg, prompts)
    scorer = build_scorer(cfg.reward, cfg.judge, plugins, prompts)
    check_scoring(scorer, cfg.judge, plugins, prompts, estimator, cfg.advantage.options)
    return Prepared(plugins, estimator, prompts, scorer, cfg.model.path, benchmark, dataset, plan)


def check_span_top_p(cfg: RunConfig, engine: RolloutEngineFactory) -> None:
    """Refuse per-span top-p thresholds and stratified answer draws to an engine that samples every
    token alike, with ``rollout.top_p``, independently."""
    apart = [f"rollout.{name}" for name in spans_apart(cfg.rollout)]
    if apart and not engine.honours_span_top_p:
        raise ConfigError(apart[0], f"the {engine.name} engine samples every token with rollout.top_p, "
                          f"independently; set {' and '.join(apart)} to their defaults (null; answer_draws: "
                          "independent; the CPU default sets them), or use an engine that honours them (hf)")


def prepare_data(cfg: RunConfig, prompts: PromptLibrary) -> tuple[Path, PairDataset, StepPlan]:
    """The training pairs, every image decoded, and the step plan that checks a step fits them and
    the ranks (the launcher's ``WORLD_SIZE``: the process group does not exist yet)."""
    benchmark = training_benchmark(cfg)
    dataset = PairDataset(benchmark / "train.jsonl", cfg.data.loco_root, max_side=cfg.data.image_size,
                          prompts=prompts)
    plan = plan_steps(cfg, len(dataset), int(os.environ.get("WORLD_SIZE", "1")))
    decode_images(dataset, dataset.rows, "checking images")
    return benchmark, dataset, plan


