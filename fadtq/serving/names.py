"""The names a policy goes by: in evaluation folders, reports and an OpenAI server's model list."""

from __future__ import annotations

from pathlib import Path


def policy_name(model_path: Path) -> str:
    """A run's folder name for ``RUN/final``, else the model folder's name."""
    model_path = model_path.absolute()  # not resolved: RUN/final links into RUN/checkpoints/
    return model_path.parent.name if model_path.name == "final" else model_path.name


def served_name(model: str) -> str:
    """The last part of a served model's name (``Qwen2.5-VL-7B-Instruct`` for a hub id)."""
    return model.rstrip("/").rsplit("/", 1)[-1]
