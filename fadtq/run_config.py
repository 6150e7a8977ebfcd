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
    size: str = "tiny"  # for path None: tiny | small
    warmup_steps: int = 150  # for path None: format warm-up steps (fadtq/training/warmup.py); 0 for none
    dtype: str = "float32"  # float32 | bfloat16
    attn_implementation: str = "sdpa"  # flash_attention_2 on GPUs

    def validate(self, key: str) -> None:
        _choice(key, "size", self.size, ("tiny", "small"))
        _choice(key, "dtype", self.dtype, ("float32", "bfloat16"))


@dataclass
class DataConfig:
    benchmark: str | None = None  # a folder with train.jsonl/test.jsonl; None: the look-alike in the cache
    loco_root: str | None = None  # images root for the manifests (default: beside the benchmark)
    synth_scale: str = "tiny"
    seed: int = 0
    image_size: int = 112  # longest side the images are resized to, once


@dataclass
class RolloutConfig:
    engine: str = "hf"
    prompts_per_step: int = 4
    group_size: int = 4
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 48

    def validate(self, key: str) -> None:
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
