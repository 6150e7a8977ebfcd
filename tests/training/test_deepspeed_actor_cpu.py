"""Proof that OpenRLHF's DeepspeedStrategy + Actor train the tiny Qwen2.5-VL on a CPU.

One rollout of 2 prompts x 2 samples (two images each), log-probs through the DeepSpeed engine,
one policy-gradient backward and optimizer step: the loss is finite and the weights move.
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

ADAM = {"lr": 1e-2, "betas": (0.9, 0.95), "eps": 1e-8, "weight_decay": 0.0}


@pytest.fixture
def strategy(monkeypatch, tmp_path):
    """A single-process gloo strategy; the process group and rendezvous env are undone afterwards."""
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    cpu_compat.apply()
    import deepspeed.comm.comm as ds_comm

    from fadtq.training.strategy import build_strategy

    monkeypatch.setattr(ds_comm, "cdb", ds_comm.cdb)  # DeepSpeed's backend handle, reset on teardown
    strategy = build_strategy(zero_stage=2, micro_train_batch_size=4, train_batch_size=4, param_dtype="fp32", seed=0)
    yield strategy
    dist.destroy_process_group()


def test_one_rollout_and_update_through_deepspeed(strategy, tiny_model_dir, two_prompts):
    from deepspeed import DeepSpeedEngine

    from fadtq.training.strategy import build_actor

    actor = build_actor(str(tiny_model_dir), "fp32", "sdpa")
    cfg = {"optim": "adam", "adam": ADAM, "lr_scheduler": "constant", "scheduler_steps": 1, "max_norm": 1.0}
    actor, optimizer, scheduler = strategy.prepare((actor, cfg))
    assert isinstance(actor.model, DeepSpeedEngine)
    assert isinstance(optimizer.optimizer, torch.optim.AdamW)  # torch_adam: nothing JIT-compiled
    before = {name: p.detach().clone() for name, p in actor.model.module.named_parameters()}

    engine = HFRolloutEngine(actor.model.module, load_processor(tiny_model_dir))
    params = SamplingParams(temperature=1.0, max_new_tokens=16, return_logprobs=True)
    torch.manual_seed(0)
    rollout = engine.generate(two_prompts, 2, params)
    assert [len(group) for group in rollout.groups] == [2, 2]

    actor.train()
    stats = completion_logprobs(actor.model, rollout.scoring, params.temperature, engine.suppressed_token_ids)
    assert torch.allclose(stats.logprobs.detach(), rollout.logprobs, atol=1e-5)
    advantages = torch.tensor([1.0, -1.0, 0.5, -0.5]).unsqueeze(1)
    mask = rollout.scoring.action_mask
    loss = -(advantages * stats.logprobs * mask).sum() / mask.sum()
    assert torch.isfinite(loss)
    strategy.backward(loss, actor, optimizer)
    strategy.optimizer_step(optimizer, actor, scheduler)

    after = dict(actor.model.module.named_parameters())
    moved = [name for name, value in before.items() if not torch.equal(value, after[name].detach())]
    assert "lm_head.weight" in moved and any(name.startswith("model.visual") for name in moved)
    assert all(torch.isfinite(p).all() for p in after.values())
    assert strategy.get_grad_norm(actor) > 0
