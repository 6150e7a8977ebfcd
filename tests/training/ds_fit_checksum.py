"""Test-only entry point: ``fadtq/train.py``'s ``main`` with a weight fingerprint after each step.

Launched by the real ``deepspeed`` launcher (see test_trainer_e2e.py). After every training step
each rank records a SHA-256 of every parameter of its policy; after ``fit`` the ranks all-gather
their records and rank 0 writes them to ``$FADTQ_TEST_CHECKSUMS`` as JSON:
``[{"rank": r, "world": w, "steps": [{name: sha256, ...} per step]}, ...]``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

import torch.distributed as dist

from fadtq.commands.train import main
from fadtq.training import trainer as trainer_module

_original_step = trainer_module.Trainer.train_step
_original_fit = trainer_module.Trainer.fit


def fingerprint(model) -> dict[str, str]:
    return {name: hashlib.sha256(p.detach().cpu().contiguous().float().numpy().tobytes()).hexdigest()
            for name, p in model.named_parameters()}


def train_step(self, step):
    result = _original_step(self, step)
    self._test_fingerprints = [*getattr(self, "_test_fingerprints", []), fingerprint(self.policy_model)]
    return result


def fit(self):
    result = _original_fit(self)
    mine = {"rank": self.rank, "world": dist.get_world_size(), "steps": self._test_fingerprints}
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, mine)
    if self.rank == 0:
        with open(os.environ["FADTQ_TEST_CHECKSUMS"], "w", encoding="utf-8") as handle:
            json.dump(gathered, handle)
    return result


trainer_module.Trainer.train_step = train_step
trainer_module.Trainer.fit = fit

if __name__ == "__main__":
    sys.exit(main())
