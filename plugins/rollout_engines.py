"""``hf``: sampling with Hugging Face ``generate`` (``fadtq.generation.hf.HFRolloutEngine``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fadtq.api import RolloutEngineFactory, hookimpl

if TYPE_CHECKING:
    import torch
    from transformers import ProcessorMixin

    from fadtq.generation.engine import RolloutEngine


def build_hf(model: torch.nn.Module, processor: ProcessorMixin) -> RolloutEngine:
    from fadtq.generation.hf import HFRolloutEngine  # transformers: only when a run samples

    return HFRolloutEngine(model, processor)


@hookimpl
def register_rollout_engines() -> list[RolloutEngineFactory]:
    return [RolloutEngineFactory("hf", build_hf, description="Hugging Face generate; CPU or one GPU per rank")]
