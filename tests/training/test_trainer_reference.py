"""GPG builds no reference model and never calls one; GRPO builds one and uses it.

In process: the Trainer is constructed (and run for one step) for each estimator while
``fadtq.training.strategy.build_actor`` and ``completion_logprobs`` are counted. GPG: one actor
built, ``trainer.reference is None``, every log-prob forward goes through the policy. GRPO: two
actors built, and the reference's forward is called. ``metadata.json`` says the same.
"""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize("estimator, actors, reference", [("gpg", 1, False), ("grpo", 2, True)])
def test_reference_model_exists_only_when_the_estimator_needs_one(in_process, tiny_model_dir, tmp_path, estimator, actors,
                                                                  reference):
    import fadtq.training.strategy as strategy
    import fadtq.training.trainer as trainer_module
    from fadtq.commands.train import build
    from fadtq.run_config import load_run_config

    built, scored_models = [], []
    real_build, real_logprobs = strategy.build_actor, trainer_module.completion_logprobs

    def counting_build(*args, **kwargs):
        built.append(args[0])
        return real_build(*args, **kwargs)

    def counting_logprobs(model, *args, **kwargs):
        scored_models.append(model)
        return real_logprobs(model, *args, **kwargs)

    in_process.setattr(strategy, "build_actor", counting_build)
    in_process.setattr(trainer_module, "completion_logprobs", counting_logprobs)
    from trainer_testlib import LOOP_CONFIG

    cfg = load_run_config(LOOP_CONFIG, {"model.path": str(tiny_model_dir), "advantage.name": estimator, "train.max_steps": "1", "rollout.max_new_tokens": "8",
                                 "output.dir": str(tmp_path), "output.name": estimator})
    trainer = build(cfg, tmp_path / estimator)

    assert len(built) == actors
    assert (trainer.reference is not None) is reference
    meta = json.loads((tmp_path / estimator / "metadata.json").read_text())
    assert meta["reference_model"] is reference
    assert meta["loss"] == ("clipped_ratio" if reference else "policy_gradient")

    trainer.fit()
    assert scored_models, "no log-prob forward ran"
    policy = trainer.policy_model
    if reference:
        ref_model = trainer.reference.model.module
        assert ref_model is not policy
        assert any(m is ref_model for m in scored_models), "GRPO never scored with its reference"
    else:
        assert all(m is policy for m in scored_models), "GPG scored with something other than its policy"
    assert (tmp_path / estimator / "final").is_dir()
