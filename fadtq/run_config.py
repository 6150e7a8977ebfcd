"""The configuration of a run: one YAML file (``configs/*.yaml``), validated on load.

Every section has defaults that describe the CPU default run; presets override what differs.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fadtq import config
from fadtq.composition import PluginChoice, RewardConfig
from fadtq.errors import ConfigError
from fadtq.generation.sampling import ANSWER_DRAWS, Sampling
from fadtq.plugin_manager import Plugins
from fadtq.losses import AGGREGATIONS
from fadtq.rollout_correction import MODES as CORRECTION_MODES


@dataclass
class ModelConfig:
    path: str | None = None  # a Hugging Face folder or hub id; None: a model built offline (make-tiny-model)
    size: str = "tiny"  # for path None: tiny | base | small
    warmup_steps: int = 150  # for path None: format warm-up steps (fadtq/pretraining/warmup.py); 0 for none
    # For path None: steps of `fadtq pretrain` (fadtq/pretraining/pretrain.py) on fresh look-alike images
    # of data.synth_difficulty; 0 for none. The shipped checkpoint in pretrained/ is used when its
    # recipe matches, else the model is pretrained into the cache on first use.
    pretrain_steps: int = 0  # second stage: the whole model learns descriptions
    pretrain_vision_steps: int = 3000  # first stage: the vision tower alone learns the scene's facts
    pretrain_seed: int = 0
    pretrain_reasoning: str = "template"  # a pair's target reasoning: template | varied (fadtq/data/varied_reasoning.py)
    pretrain_start: str = "fresh"  # fresh, or a checkpoint in pretrained/ that pretraining goes on from
    dtype: str = "float32"  # float32 | bfloat16
    attn_implementation: str = "sdpa"  # flash_attention_2 on GPUs

    def validate(self, key: str) -> None:
        _choice(key, "size", self.size, ("tiny", "base", "base7", "small"))
        _choice(key, "dtype", self.dtype, ("float32", "bfloat16"))
        _choice(key, "pretrain_reasoning", self.pretrain_reasoning, ("template", "varied"))
        _at_least(key, self, warmup_steps=0, pretrain_steps=0, pretrain_vision_steps=0)
        if self.pretrain_start != "fresh" and self.pretrain_vision_steps:
            raise ConfigError(f"{key}.pretrain_vision_steps", "set 0 with pretrain_start (the checkpoint it goes on "
                              "from keeps its vision tower, frozen)")
        if self.pretrain_steps and self.warmup_steps:
            raise ConfigError(f"{key}.warmup_steps", "set 0 with pretrain_steps (pretraining already teaches the format)")
        if self.path is not None and not self.path.strip():
            raise ConfigError(f"{key}.path", "expected a model folder or hub id, got an empty string")


@dataclass
class DataConfig:
    benchmark: str | None = None  # a folder with train.jsonl/test.jsonl; None: the look-alike in the cache
    loco_root: str | None = None  # images root for the manifests (default: beside the benchmark)
    synth_scale: str = "tiny"  # tiny | cpu | paper: images per folder of the look-alike
    synth_difficulty: str = "standard"  # standard | easy (fadtq/data/synth.py Difficulty)
    seed: int = 0
    image_size: int = 112  # longest side the images are resized to, once

    def validate(self, key: str) -> None:
        from fadtq.data.synth import DIFFICULTIES, SCALES

        _choice(key, "synth_scale", self.synth_scale, SCALES)
        _choice(key, "synth_difficulty", self.synth_difficulty, tuple(DIFFICULTIES))
        _at_least(key, self, image_size=1, seed=0)


@dataclass(frozen=True)
class RolloutConfig(Sampling):
    """The rollout section: the sampling settings (:class:`Sampling`, declared once) and these."""

    engine: str = "hf"
    prompts_per_step: int = 4
    group_size: int = 4
    # Dynamic sampling (fadtq/training/dynamic_sampling.py): drop groups whose rewards are all
    # equal and draw more prompts, at most max_draws extra draws per step; each extra draw of a whole
    # step's share (refill: batch, DAPO's) or of as many prompts as groups are missing (missing).
    dynamic_sampling: bool = False
    max_draws: int = 3
    # Each step's prompts in the training set's class proportions (fadtq/training/step_order.py):
    # takes away the step-to-step imbalance that pushes the policy's prior between classes.
    class_balanced: bool = False
    refill: str = "batch"
    # Keyword options of the engine's builder (e.g. vllm: gpu_memory_utilization, sleep_mode).
    options: dict[str, Any] = field(default_factory=dict)

    def validate(self, key: str) -> None:
        _at_least(key, self, prompts_per_step=1, group_size=1, max_new_tokens=1, max_draws=0)
        _above(key, self, temperature=0.0, top_p=0.0)
        _choice(key, "refill", self.refill, ("missing", "batch"))
        _choice(key, "answer_draws", self.answer_draws, ANSWER_DRAWS)
        for name in ("top_p", "answer_top_p", "reasoning_top_p"):
            value = getattr(self, name)
            if value is not None and not 0 < value <= 1:
                raise ConfigError(f"{key}.{name}", f"expected a number in (0, 1], got {value}")


# train.lr_scheduler -> the transformers schedule OpenRLHF's strategy builds (no warm-up either way)
LR_SCHEDULERS = {"constant": "constant_with_warmup", "cosine": "cosine_with_min_lr"}


@dataclass
class RolloutCorrection:
    """Importance weights on the rollouts of an engine that samples from a copy of the weights
    (vllm; fadtq/rollout_correction.py): mode none, token_truncate, token_mask, sequence_truncate or
    sequence_mask, at threshold C. With an engine that samples from the policy itself (hf) there is
    nothing to correct."""

    mode: str = "token_truncate"
    threshold: float = 2.0

    def validate(self, key: str) -> None:
        _choice(key, "mode", self.mode, CORRECTION_MODES)
        if self.threshold <= 1.0:
            raise ConfigError(f"{key}.threshold", f"expected a number above 1, got {self.threshold:g}")


@dataclass
class LoraSettings:
    """Low-rank adapters (peft's LoRA) on the linear layers named ``target_modules``; rank 0: none,
    the whole policy trains (fadtq/training/lora.py)."""

    rank: int = 0
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: [
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])

    def validate(self, key: str) -> None:
        _at_least(key, self, rank=0)
        _above(key, self, alpha=0.0)
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"{key}.dropout", f"expected a number in [0, 1), got {self.dropout:g}")
        if not self.target_modules or not all(name.strip() for name in self.target_modules):
            raise ConfigError(f"{key}.target_modules", "expected a list of module names, e.g. [q_proj, v_proj]")


@dataclass
class TrainConfig:
    epochs: int = 1
    max_steps: int | None = None
    lr: float = 1e-4
    # The learning rate over the run's steps: constant, or a cosine decay to min_lr_ratio * lr at the
    # last step (OpenRLHF's default schedule; a run without max_steps decays over all its epochs).
    lr_scheduler: str = "constant"
    min_lr_ratio: float = 0.1
    freeze_vision_tower: bool = False  # RL trains the language model only; the tower keeps what it sees
    # Recompute each layer's activations in the backward pass instead of keeping them (language
    # model and vision tower): peak memory for compute; the training forward then runs each row's
    # whole sequence, since a checkpointed layer keeps no cache (fadtq/policy/logprobs.py).
    gradient_checkpointing: bool = False
    # Each micro-batch also trains the pretraining descriptions of ptx_batch_size fresh look-alike
    # images, weighted ptx_coef (fadtq/training/ptx.py); 0: pure RL.
    ptx_coef: float = 0.0
    ptx_batch_size: int = 4
    # An entropy bonus on the decision: loss -= answer_entropy_coef * H, H the entropy of the three
    # classes' probabilities at the answer's first token; it keeps a class the policy stops giving
    # in play (fadtq/training/answer_entropy.py).
    answer_entropy_coef: float = 0.0
    weight_decay: float = 0.0
    # Rollouts per forward and backward, at most: a rank with fewer rollouts per step takes them in one.
    micro_batch_size: int = 8
    grad_clip: float = 1.0
    # How a loss reduces its per-token terms (fadtq/losses.py AGGREGATIONS): token-mean
    # (the GPG paper, DAPO), seq-mean-token-sum (Dr. GRPO), seq-mean-token-mean (GRPO).
    loss_agg_mode: str = "token-mean"
    clip_eps: float = 0.2  # clipped_ratio loss only
    kl_coef: float = 0.04  # clipped_ratio loss with a reference model only
    rollout_correction: RolloutCorrection = field(default_factory=RolloutCorrection)
    lora: LoraSettings = field(default_factory=LoraSettings)
    seed: int = 0

    def validate(self, key: str) -> None:
        _at_least(key, self, epochs=1, micro_batch_size=1, weight_decay=0.0, grad_clip=0.0, kl_coef=0.0, seed=0,
                  ptx_coef=0.0, ptx_batch_size=1, answer_entropy_coef=0.0)
        if self.max_steps is not None:
            _at_least(key, self, max_steps=1)
        _above(key, self, lr=0.0, clip_eps=0.0)
        if self.clip_eps >= 1.0:
            raise ConfigError(f"{key}.clip_eps", f"expected a number in (0, 1), got {self.clip_eps:g}")
        _choice(key, "loss_agg_mode", self.loss_agg_mode, tuple(AGGREGATIONS))
        _choice(key, "lr_scheduler", self.lr_scheduler, tuple(LR_SCHEDULERS))
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(f"{key}.min_lr_ratio", f"expected a number in [0, 1], got {self.min_lr_ratio:g}")


@dataclass
class DeepSpeedConfig:
    zero_stage: int = 0  # mixed precision follows model.dtype (bfloat16 -> bf16 DeepSpeed config)
    # ZeRO-Offload on GPU machines: Adam's state and step in CPU memory (ZeRO 1-3), and the
    # partitioned weights too (ZeRO-3 only). Machines without GPUs keep everything there already.
    offload_optimizer: bool = False
    offload_param: bool = False

    def validate(self, key: str) -> None:
        _choice(key, "zero_stage", self.zero_stage, (0, 1, 2, 3))
        if self.offload_optimizer and self.zero_stage == 0:
            raise ConfigError(f"{key}.offload_optimizer", "needs ZeRO: set deepspeed.zero_stage to 1, 2 or 3")
        if self.offload_param and self.zero_stage != 3:
            raise ConfigError(f"{key}.offload_param", f"needs ZeRO-3 (deepspeed.zero_stage is {self.zero_stage})")


LOGGERS = ("tensorboard", "wandb", "trackio")


@dataclass
class OutputConfig:
    dir: str = "runs"
    name: str | None = None  # default: <config stem>-<timestamp>
    save_every: int = 0  # steps between checkpoints; 0: only at the end
    keep_checkpoints: int = 2
    sample_every: int = 1  # steps between rows of samples.jsonl
    samples_per_step: int = 4
    # Where every scalar, the config and the sample tables also go (fadtq/training/trackers.py):
    # tensorboard, wandb, trackio (the last two optional extras); project: their project name.
    loggers: list[str] = field(default_factory=lambda: ["tensorboard"])
    project: str = "fadtq"

    def validate(self, key: str) -> None:
        _at_least(key, self, save_every=0, keep_checkpoints=1, sample_every=0, samples_per_step=0)
        for name in self.loggers:
            _choice(key, "loggers", name, LOGGERS)
        if len(set(self.loggers)) != len(self.loggers):
            raise ConfigError(f"{key}.loggers", f"names a logger twice: {self.loggers}")
        if not self.project.strip():
            raise ConfigError(f"{key}.project", "expected a project name, got an empty string")
        if not self.dir.strip():
            raise ConfigError(f"{key}.dir", "expected a folder, got an empty string")
        if self.name is not None and (not self.name.strip() or self.name in (".", "..") or "/" in self.name):
            raise ConfigError(f"{key}.name", f"expected a plain folder name (no '/'), got {self.name!r}")


@dataclass
class RunConfig:
    reward: RewardConfig
    judge: PluginChoice = field(default_factory=lambda: PluginChoice("heuristic"))
    advantage: PluginChoice = field(default_factory=lambda: PluginChoice("gpg"))
    prompts_dir: str | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    deepspeed: DeepSpeedConfig = field(default_factory=DeepSpeedConfig)
    output: OutputConfig = field(default_factory=OutputConfig)


def _choice(key: str, name: str, value: object, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}.{name}", f"expected one of {', '.join(map(str, allowed))}, got {value!r}")


def _at_least(key: str, section: object, **minimums: float) -> None:
    for name, minimum in minimums.items():
        value = getattr(section, name)
        if value < minimum:
            raise ConfigError(f"{key}.{name}", f"expected a number >= {minimum:g}, got {value:g}")


def _above(key: str, section: object, **bounds: float) -> None:
    for name, bound in bounds.items():
        value = getattr(section, name)
        if value <= bound:
            raise ConfigError(f"{key}.{name}", f"expected a number > {bound:g}, got {value:g}")


def check_plugins(cfg: RunConfig, plugins: Plugins) -> None:
    """Every plugin the config names is registered, and the estimator takes its options."""
    checks = [("judge.name", cfg.judge.name, plugins.judges),
              ("advantage.name", cfg.advantage.name, plugins.advantages),
              ("rollout.engine", cfg.rollout.engine, plugins.engines)]
    checks += [(f"reward.terms.{name}.reward", term.reward, plugins.rewards)
               for name, term in cfg.reward.terms.items() if term.reward is not None]
    for key, name, registry in checks:
        if name not in registry:
            raise ConfigError(key, f"unknown {registry.kind} {name!r}; known: {', '.join(registry.names())}")
    estimator = plugins.advantages.get(cfg.advantage.name)
    if estimator.loss not in plugins.losses:
        raise ConfigError("advantage.name", f"the {estimator.name} estimator asks for unknown loss {estimator.loss!r}; "
                                            f"known: {', '.join(plugins.losses.names())}")
    check_keyword_options(estimator.fn, 2, f"the {estimator.name} estimator", cfg.advantage.options,
                          "advantage.options")
    if estimator.check_options is not None:
        for name, problem in estimator.check_options(cfg.advantage.options, cfg.rollout.group_size).items():
            raise ConfigError(f"advantage.options.{name}", f"{problem} (the {estimator.name} estimator)",
                              related=("rollout.group_size",))
    engine = plugins.engines.get(cfg.rollout.engine)
    check_keyword_options(engine.build, 2, f"the {engine.name} rollout engine", cfg.rollout.options, "rollout.options")


def check_keyword_options(fn, positional: int, owner: str, options: dict, key: str) -> None:
    """The options are keyword parameters of ``fn`` (after its first ``positional`` parameters), of
    the type of their defaults."""
    try:
        parameters = list(inspect.signature(fn).parameters.values())[positional:]
    except (TypeError, ValueError):  # no signature to read (a builtin): the call will tell
        return
    named = {p.name: p for p in parameters if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters)
    for name, value in options.items():
        if name not in named:
            if takes_any:
                continue
            raise ConfigError(f"{key}.{name}", f"unknown option of {owner}; known: {', '.join(named) or 'none'}")
        default = named[name].default
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ConfigError(f"{key}.{name}", f"expected true or false, got {value!r}")
        if type(default) in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ConfigError(f"{key}.{name}", f"expected a number, got {value!r}")


def load_run_config_traced(path: str | Path | None = None, overrides: dict[str, str] | None = None,
                           flags: dict[str, str] | None = None) -> tuple[RunConfig, config.Origins]:
    """The config and where each of its keys came from (for errors found after loading)."""
    return config.load_traced(RunConfig, config.resolve_config_path(path), overrides, flags)


def load_run_config(path: str | Path | None = None, overrides: dict[str, str] | None = None) -> RunConfig:
    """``path`` is a file or a preset name from ``configs/``; ``None`` is the CPU default."""
    return load_run_config_traced(path, overrides)[0]
