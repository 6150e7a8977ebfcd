"""The configuration of a run: one YAML file (``configs/*.yaml``), validated on load.

Every section has defaults that describe the CPU default run; presets override what differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fadtq import config
from fadtq.composition import PluginChoice, RewardConfig
from fadtq.errors import FadtqError


@dataclass
class ModelConfig:
    path: str | None = None  # a Hugging Face folder or hub id; None: a model built offline (make-tiny-model)
    size: str = "tiny"  # for path None: tiny | base | small
    warmup_steps: int = 150  # for path None: format warm-up steps (fadtq/training/warmup.py); 0 for none
    # For path None: steps of `fadtq pretrain` (fadtq/training/pretrain.py) on fresh look-alike images
    # of data.synth_difficulty; 0 for none. The shipped checkpoint in pretrained/ is used when its
    # recipe matches, else the model is pretrained into the cache on first use.
    pretrain_steps: int = 0
    pretrain_seed: int = 0
    dtype: str = "float32"  # float32 | bfloat16
    attn_implementation: str = "sdpa"  # flash_attention_2 on GPUs

    def validate(self, key: str) -> None:
        _choice(key, "size", self.size, ("tiny", "base", "small"))
        _choice(key, "dtype", self.dtype, ("float32", "bfloat16"))
        if self.pretrain_steps < 0 or self.warmup_steps < 0:
            raise FadtqError(f"{key}: pretrain_steps and warmup_steps must be >= 0")
        if self.pretrain_steps and self.warmup_steps:
            raise FadtqError(f"{key}.warmup_steps: set 0 with pretrain_steps (pretraining already teaches the format)")


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


@dataclass
class RolloutConfig:
    engine: str = "hf"
    prompts_per_step: int = 4
    group_size: int = 4
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 48
    # Dynamic sampling (fadtq/training/dynamic_sampling.py): drop groups whose rewards are all
    # equal and draw more prompts, at most max_draws extra draws per step.
    dynamic_sampling: bool = False
    max_draws: int = 3

    def validate(self, key: str) -> None:
        if self.max_draws < 0:
            raise FadtqError(f"{key}.max_draws: expected an integer >= 0, got {self.max_draws}")
        for name in ("prompts_per_step", "group_size", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise FadtqError(f"{key}.{name}: expected a positive integer, got {getattr(self, name)}")
        if self.temperature <= 0 or not 0 < self.top_p <= 1:
            raise FadtqError(f"{key}: expected temperature > 0 and 0 < top_p <= 1")


@dataclass
class TrainConfig:
    epochs: int = 1
    max_steps: int | None = None
    lr: float = 1e-4
    weight_decay: float = 0.0
    micro_batch_size: int = 8
    grad_clip: float = 1.0
    clip_eps: float = 0.2  # clipped_ratio loss only
    kl_coef: float = 0.04  # clipped_ratio loss with a reference model only
    seed: int = 0


@dataclass
class DeepSpeedConfig:
    zero_stage: int = 0  # mixed precision follows model.dtype (bfloat16 -> bf16 DeepSpeed config)

    def validate(self, key: str) -> None:
        _choice(key, "zero_stage", self.zero_stage, (0, 1, 2, 3))


@dataclass
class OutputConfig:
    dir: str = "runs"
    name: str | None = None  # default: <config stem>-<timestamp>
    save_every: int = 0  # steps between checkpoints; 0: only at the end
    keep_checkpoints: int = 2
    sample_every: int = 1  # steps between rows of samples.jsonl
    samples_per_step: int = 4


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
        raise FadtqError(f"{key}.{name}: expected one of {', '.join(map(str, allowed))}, got {value!r}")


def load_run_config(path: str | Path | None = None, overrides: dict[str, str] | None = None) -> RunConfig:
    """``path`` is a file or a preset name from ``configs/``; ``None`` is the CPU default."""
    return config.load(RunConfig, config.resolve_config_path(path), overrides)
