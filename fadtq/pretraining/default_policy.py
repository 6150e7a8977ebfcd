"""The offline policy a run gets with ``model.path: null``: built into the cache on first use.

Which one the config's ``model`` section asks for: the pretrained policy of ``fadtq pretrain``
(``model.pretrain_steps`` > 0; the checkpoint shipped in ``pretrained/`` when its recipe matches,
its hash checked), else a tiny model of ``model.size``, format-warmed when ``model.warmup_steps``
> 0. The command line builds it explicitly, logged, before the trainer is assembled
(``fadtq.commands.train``); nothing builds a model as a side effect.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fadtq.files import create_dir_once
from fadtq.paths import cache_dir
from fadtq.run_config import RunConfig

log = logging.getLogger("fadtq.train")
# Checkpoints the project's own `fadtq pretrain` made, each with its recipe and hash (pretrained/README.md).
SHIPPED_MODELS = Path(__file__).resolve().parents[2] / "pretrained"


def default_policy(cfg: RunConfig, dataset) -> Path:
    """The policy of ``model.path: null`` for this config: pretrained, or format-warmed, or as built.
    ``dataset`` is the run's training pairs (the format warm-up reads their prompts)."""
    if cfg.model.pretrain_steps:
        return pretrained_model_dir(cfg)
    return default_model_dir(cfg.model.size, cfg.train.seed, cfg.model.warmup_steps, dataset)


def default_model_dir(size: str, seed: int, warmup_steps: int, dataset, family: str = "qwen2_5_vl") -> Path:
    """The offline model of ``family`` and ``size``, built into the cache on first use and, when
    ``warmup_steps`` > 0, given the format warm-up (random answers: accuracy stays at chance)."""
    from fadtq.pretraining.tiny_model import make_tiny_model
    from fadtq.pretraining.warmup import warmup

    name = "qwen2.5-vl" if family == "qwen2_5_vl" else family  # the default family's folders keep their name
    base = cache_dir() / "models" / f"{name}-{size}-seed{seed}"
    if not (base / "config.json").is_file():
        log.info("building the %s %s model into %s (first use)", family, size, base)
        create_dir_once(base, lambda tmp: make_tiny_model(tmp / "model", size=size, seed=seed, family=family))
    if warmup_steps <= 0:
        return base
    warm = base.with_name(f"{base.name}-warmup{warmup_steps}")
    if not (warm / "config.json").is_file():
        log.info("format warm-up of %s: %d steps into %s (first use)", base.name, warmup_steps, warm)
        create_dir_once(warm, lambda tmp: warmup(base, tmp / "model", dataset, steps=warmup_steps, seed=seed))
    return warm


def pretrained_model_dir(cfg: RunConfig) -> Path:
    """The policy of ``fadtq pretrain`` for the config's recipe: the checkpoint shipped in
    ``pretrained/`` when its recipe matches (its hash checked), else pretrained into the cache once."""
    from fadtq.pretraining.pretrain import build_pretrained, recipe_from_config, verify_shipped

    recipe = recipe_from_config(cfg)
    shipped = SHIPPED_MODELS / recipe.folder_name()
    if (shipped / "config.json").is_file():
        return verify_shipped(shipped, recipe)
    cached = cache_dir() / "models" / recipe.folder_name()
    if not (cached / "config.json").is_file():
        log.info("pretraining %s into the cache (no shipped checkpoint has this recipe)", recipe.folder_name())
        build_pretrained(cached, recipe)
    return cached
