"""The configuration of a run: one YAML file (``configs/*.yaml``), validated on load."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fadtq import config
from fadtq.composition import PluginChoice, RewardConfig


@dataclass
class RunConfig:
    reward: RewardConfig
    judge: PluginChoice = field(default_factory=lambda: PluginChoice("heuristic"))
    advantage: PluginChoice = field(default_factory=lambda: PluginChoice("gpg"))
    prompts_dir: str | None = None


def load_run_config(path: str | Path | None = None, overrides: dict[str, str] | None = None) -> RunConfig:
    """``path`` is a file or a preset name from ``configs/``; ``None`` is the CPU default."""
    return config.load(RunConfig, config.resolve_config_path(path), overrides)
