"""The pretraining loss mixed into RL (``train.ptx_coef``), as InstructGPT's PPO-ptx and OpenRLHF's
``--ptx_coef`` do.

A policy of two million parameters forgets how to describe what it sees within a few dozen RL
steps: the reward scores only the answer, and Adam moves every weight by about the learning rate
per step, signal or not (``docs/pretraining.md``). Each micro-batch therefore also trains the
policy's own pretraining task on fresh look-alike pairs (``fadtq.training.pretrain``): the
reasoning that describes both images, up to and including ``<answer>``, and not the answer
itself. Those images come from seeds no benchmark uses, so the mix keeps the policy's eyes and
words without teaching it the decision.
"""

from __future__ import annotations

import torch

from fadtq.prompts import PromptLibrary
from fadtq.run_config import RunConfig
from fadtq.training.pretrain import PretrainRecipe, examples, recipe_from_config
from fadtq.training.warmup import supervised_batch

PTX_OFFSET = 2 * 10**9  # example indices of the mix: beyond pretraining's and its held-out check's


class DescriptionLoss:
    """The reasoning loss of ``batch_size`` fresh pairs, different for every (step, micro-batch,
    rank) and the same on a resumed run."""

    def __init__(self, cfg: RunConfig, processor, rank: int, world_size: int) -> None:
        self.recipe: PretrainRecipe = recipe_from_config(cfg)
        self.batch_size = cfg.train.ptx_batch_size
        self.processor, self.rank, self.world_size = processor, rank, world_size
        self.prompts = PromptLibrary()

    def __call__(self, model, step: int, micro_batch: int, micro_batches: int) -> torch.Tensor:
        slot = (step * micro_batches + micro_batch) * self.world_size + self.rank
        batch = list(examples(self.recipe, PTX_OFFSET + slot * self.batch_size, self.batch_size, self.prompts,
                              pair=True))
        reasoning = [f"<think>{e.think}</think><answer>" for e in batch]
        return model(**supervised_batch(self.processor, batch, reasoning, finished=False)).loss
