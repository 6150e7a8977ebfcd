"""The pretraining loss mixed into RL (``train.ptx_coef``), as InstructGPT's PPO-ptx and OpenRLHF's
``--ptx_coef`` do.

A policy of two million parameters forgets how to describe what it sees within a few dozen RL
steps: the reward scores only the answer, and Adam moves every weight by about the learning rate
per step, signal or not (``docs/history/pretraining-log.md``). Each micro-batch therefore also trains the
policy's own pretraining task on fresh look-alike pairs (``fadtq.pretraining.pretrain``): the
reasoning that describes both images, up to and including ``<answer>``, and not the answer
itself. Those images come from seeds no benchmark uses, so the mix keeps the policy's eyes and
words without teaching it the decision.
"""

from __future__ import annotations

import torch

from fadtq.policy.forward_batch import ForwardBatch
from fadtq.policy.logprobs import TokenStats
from fadtq.pretraining.pretrain import PretrainRecipe, examples, recipe_from_config
from fadtq.pretraining.warmup import supervised_batch
from fadtq.prompts import PromptLibrary
from fadtq.run_config import RunConfig
from fadtq.training.auxiliary import MicroBatch

PTX_OFFSET = 2 * 10**9  # example indices of the mix: beyond pretraining's and its held-out check's


class DescriptionLoss:
    """The auxiliary term (``fadtq.training.auxiliary``): the reasoning loss of ``batch_size`` fresh
    pairs, different for every (step, micro-batch, rank) and the same on a resumed run."""

    metric = "loss/ptx_loss"
    gather_ids = ()

    def __init__(self, cfg: RunConfig, processor, rank: int, world_size: int) -> None:
        self.coef = cfg.train.ptx_coef
        self.recipe: PretrainRecipe = recipe_from_config(cfg)
        self.batch_size = cfg.train.ptx_batch_size
        self.processor, self.rank, self.world_size = processor, rank, world_size
        self.prompts = PromptLibrary()

    def __call__(self, model, batch: ForwardBatch, stats: TokenStats, micro: MicroBatch) -> tuple[torch.Tensor, float]:
        """The loss on this micro-batch's own fresh pairs (the RL batch itself is not read)."""
        slot = (micro.step * micro.count + micro.number) * self.world_size + self.rank
        pairs = list(examples(self.recipe, PTX_OFFSET + slot * self.batch_size, self.batch_size, self.prompts,
                              pair=True))
        reasoning = [f"<think>{e.think}</think><answer>" for e in pairs]
        return model(**supervised_batch(self.processor, pairs, reasoning, finished=False)).loss, 1.0
