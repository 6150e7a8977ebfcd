"""On a controlled batch, one GPG update raises the log-probability of the completion with a
positive advantage and lowers the one with a negative advantage.

The pieces are the Trainer's own: OpenRLHF's DeepSpeed strategy and Actor (ZeRO 0, fp32, as on
the CPU default), the HF rollout engine, ``completion_logprobs`` and the loss the ``gpg``
estimator declares (``policy_gradient``), one backward and one optimizer step.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from fadtq.generation.engine import SamplingParams
from fadtq.generation.hf import HFRolloutEngine
from fadtq.training import cpu_compat
from fadtq.policy.logprobs import completion_logprobs
from fadtq.policy.processor import load_processor

PARAMS = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=16)
OPTIM = {"optim": "adam", "adam": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0},
         "lr_scheduler": "constant", "scheduler_steps": 1, "max_norm": 1.0}


@pytest.fixture
def strategy(monkeypatch, tiny_model_dir):
    """A single-process gloo strategy; the process group and rendezvous env are undone afterwards."""
    for key, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(cpu_compat.free_port())}.items():
        monkeypatch.setenv(key, value)  # recorded, so restored (or removed) on teardown
    cpu_compat.apply()
    import deepspeed.comm.comm as ds_comm
    import deepspeed.utils.groups as ds_groups

    from fadtq.training.strategy import build_strategy

    monkeypatch.setattr(ds_comm, "cdb", ds_comm.cdb)
    monkeypatch.setattr(ds_groups, "_WORLD_GROUP", None)  # DeepSpeed caches a clone of the old world group
    strategy = build_strategy(zero_stage=0, micro_train_batch_size=2, train_batch_size=2, param_dtype="fp32", seed=0)
    yield strategy
    dist.destroy_process_group()


def sequence_logprobs(model, scoring, suppress) -> torch.Tensor:
    with torch.no_grad():
        stats = completion_logprobs(model, scoring, PARAMS.temperature, suppress)
    return (stats.logprobs * scoring.action_mask).sum(dim=1)


@pytest.mark.parametrize("advantages", [(1.0, -1.0), (-1.0, 1.0)], ids=["first-up", "first-down"])
def test_gpg_step_moves_logprobs_in_the_direction_of_the_advantage(strategy, tiny_model_dir, two_prompts, advantages):
    from fadtq.plugin_manager import default_plugins
    from fadtq.losses import LossInputs, policy_gradient
    from fadtq.training.strategy import build_actor

    estimator = default_plugins().advantages.get("gpg")
    loss_spec = default_plugins().losses.get(estimator.loss)
    assert loss_spec.fn is policy_gradient and not loss_spec.needs_reference

    actor, optim, scheduler = strategy.prepare((build_actor(str(tiny_model_dir), "fp32", "sdpa"), OPTIM))
    policy = actor.model.module
    engine = HFRolloutEngine(policy, load_processor(tiny_model_dir))
    torch.manual_seed(0)
    rollout = engine.generate(two_prompts, 1, PARAMS)  # one completion per prompt: rows 0 and 1
    scoring, suppress = rollout.scoring, engine.suppressed_token_ids
    assert scoring.action_mask.sum(dim=1).min() > 0
    actor.eval()
    before = sequence_logprobs(policy, scoring, suppress)

    actor.train()
    stats = completion_logprobs(policy, scoring, PARAMS.temperature, suppress)
    loss, _ = loss_spec.fn(LossInputs(stats.logprobs, torch.tensor(advantages), scoring.action_mask))
    strategy.backward(loss, actor, optim)
    strategy.optimizer_step(optim, actor, scheduler)

    actor.eval()
    after = sequence_logprobs(policy, scoring, suppress)
    delta = after - before
    up, down = (0, 1) if advantages[0] > 0 else (1, 0)
    assert delta[up] > 0, f"positive advantage: log-prob {before[up]:.4f} -> {after[up]:.4f}"
    assert delta[down] < 0, f"negative advantage: log-prob {before[down]:.4f} -> {after[down]:.4f}"
