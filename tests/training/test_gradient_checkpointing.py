"""Gradient checkpointing (``train.gradient_checkpointing``): the same gradients as without it, in
every model family, with the language model's and the vision tower's layers recomputed."""

from __future__ import annotations

import torch

from fadtq.generation.engine import SamplingParams
from fadtq.policy.family import family_of_model
from fadtq.policy.logprobs import completion_logprobs

PARAMS = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=12)


def gradients(model, scoring, suppress) -> dict[str, torch.Tensor]:
    weights = torch.linspace(-1.0, 1.0, scoring.action_mask.numel()).view_as(scoring.action_mask)
    model.zero_grad()
    (weights * completion_logprobs(model, scoring, 1.0, suppress).logprobs).sum().backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def test_checkpointed_layers_give_the_gradients_of_stored_activations(family_engine, two_prompts):
    torch.manual_seed(0)
    scoring = family_engine.generate(two_prompts, 3, PARAMS).scoring
    model, suppress = family_engine.model.train(), family_engine.suppressed_token_ids
    stored = gradients(model, scoring, suppress)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    recomputed = gradients(model, scoring, suppress)
    tower = family_of_model(model).tower(model)
    checkpointed = [m for m in model.modules() if getattr(m, "gradient_checkpointing", False)]
    assert any(m in set(tower.modules()) for m in checkpointed)
    assert any(m not in set(tower.modules()) for m in checkpointed)
    assert stored.keys() == recomputed.keys() and any(f".{family_of_model(model).vision_tower}." in k for k in stored)
    for name, grad in stored.items():
        torch.testing.assert_close(recomputed[name], grad, atol=1e-5, rtol=1e-4, msg=name)


def test_a_run_with_checkpointing_trains_with_checkpointed_layers(in_process, tiny_model_dir, tmp_path):
    """The policy leaves from_pretrained in eval mode, where transformers checkpoints nothing: the
    run puts it in training mode, so the update's forward recomputes its layers."""
    from trainer_testlib import LOOP_CONFIG

    from fadtq.commands.train import build
    from fadtq.policy.logprobs import checkpointing
    from fadtq.run_config import load_run_config

    cfg = load_run_config(LOOP_CONFIG, {"model.path": str(tiny_model_dir), "train.gradient_checkpointing": "true",
                                        "output.dir": str(tmp_path), "output.name": "gc"})
    policy = build(cfg, tmp_path / "gc").policy_model
    assert policy.training and checkpointing(policy)
