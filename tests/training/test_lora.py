"""Training through low-rank adapters (``train.lora``): only the adapters train and are kept in
the checkpoints' DeepSpeed state, the merged policy answers as the adapted one, a run killed at
its first checkpoint resumes bit-identically, vLLM samples from the merged weights after every
step, and GRPO's reference is the policy's own base with the adapters switched off."""

from __future__ import annotations

import json

import pytest
import torch
from trainer_testlib import SIGNAL_REWARD, killed_and_resumed, ok, policy_state, python_cmd, rows, run

from fadtq.run_config import LoraSettings
from fadtq.training.lora import add_adapters

STEPS = 3
GAP = 1e-4
COMMON = ("--rewards", f"format,accuracy,{SIGNAL_REWARD}", "--train.lr", "1e-2", "--train.lora.rank", "4")
ARGS = (*COMMON, "--train.max_steps", str(STEPS), "--output.save_every", "1", "--output.keep_checkpoints", "3")


def _adapted(tiny_model_dir, freeze_tower: bool = False):
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir, dtype=torch.float32)
    adapted = add_adapters(model, LoraSettings(rank=4), freeze_tower)
    torch.manual_seed(0)
    for name, param in adapted.named_parameters():
        if "lora_B" in name:  # peft starts B at zero: a trained-looking adapter instead
            torch.nn.init.normal_(param, std=0.05)
    return adapted


def test_adapters_go_on_the_language_model_and_on_the_tower_unless_it_is_frozen(tiny_model_dir):
    for frozen in (False, True):
        trainable = [n for n, p in _adapted(tiny_model_dir, frozen).named_parameters() if p.requires_grad]
        assert trainable and all(".lora_" in n for n in trainable)
        assert any(".language_model." in n for n in trainable)
        assert any(".visual." in n for n in trainable) is not frozen


def test_the_merged_policy_answers_as_the_adapted_one(tiny_model_dir, two_prompts, tmp_path):
    from transformers import AutoModelForImageTextToText

    from fadtq.generation.engine import SamplingParams
    from fadtq.generation.hf import HFRolloutEngine
    from fadtq.policy.adapters import merged_state_dict, unwrapped
    from fadtq.policy.processor import load_processor

    adapted = _adapted(tiny_model_dir)
    unwrapped(adapted).save_pretrained(tmp_path / "merged", state_dict=merged_state_dict(adapted))
    merged = AutoModelForImageTextToText.from_pretrained(tmp_path / "merged", dtype=torch.float32)
    processor = load_processor(tiny_model_dir)
    greedy = SamplingParams(greedy=True, max_new_tokens=24, return_logprobs=True)
    answers = [HFRolloutEngine(model, processor).generate(two_prompts, 1, greedy) for model in (adapted, merged)]
    assert [c.completion_ids for g in answers[0].groups for c in g] == [c.completion_ids for g in answers[1].groups
                                                                        for c in g]
    assert torch.allclose(answers[0].scoring.rollout_logprobs, answers[1].scoring.rollout_logprobs, atol=1e-5)
    plain = AutoModelForImageTextToText.from_pretrained(tiny_model_dir, dtype=torch.float32).state_dict()
    changed = {k for k, v in merged.state_dict().items() if not torch.equal(v, plain[k])}
    assert changed and all(k.endswith("proj.weight") for k in changed)  # the adapted layers, and only they


@pytest.fixture(scope="module")
def lora_runs(train_env, model_args, tmp_path_factory):
    """Two vllm-engine LoRA runs side by side: ``a`` uninterrupted, ``b`` SIGKILLed at its first
    checkpoint and resumed."""
    run_a, run_b, _ = killed_and_resumed(tmp_path_factory.mktemp("lora"), (*ARGS, *model_args, "--rollout.engine", "vllm"),
                                         train_env, STEPS)
    return run_a, run_b


def test_only_the_adapters_train_and_the_checkpoints_keep_only_them(lora_runs, tiny_model_dir):
    run_a, _ = lora_runs
    start, final = policy_state(tiny_model_dir), policy_state(run_a / "final")
    assert start.keys() == final.keys()  # an ordinary model folder: no adapter names
    changed = {k for k in start if not torch.equal(start[k], final[k])}
    assert changed and all(k.endswith("proj.weight") for k in changed)
    states = [torch.load(f, weights_only=False) for f in (run_a / "checkpoints").glob("step-*/deepspeed/state/*model_states.pt")]
    assert states and all(set(s["module"]) and all(".lora_" in k for k in s["module"]) for s in states)


def test_vllm_samples_from_the_merged_weights_after_every_step(lora_runs):
    metrics = rows(lora_runs[0] / "metrics.jsonl")
    assert [m["step"] for m in metrics] == list(range(STEPS))
    assert all(0 <= m["rollout/logprob_gap"] < GAP for m in metrics)


def test_a_lora_run_killed_at_its_first_checkpoint_resumes_bit_identically(lora_runs):
    run_a, run_b = lora_runs
    final_a, final_b = policy_state(run_a / "final"), policy_state(run_b / "final")
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a)
    assert [m["reward/total"] for m in rows(run_a / "metrics.jsonl")] == [m["reward/total"] for m in rows(run_b / "metrics.jsonl")]


def test_grpo_with_adapters_takes_the_base_as_its_reference(train_env, model_args, tmp_path):
    ok(run(python_cmd(*COMMON, *model_args, "--advantage.name", "grpo", "--train.max_steps", "2", "--output.dir", tmp_path,
                      "--output.name", "grpo"), train_env))
    meta = json.loads((tmp_path / "grpo" / "metadata.json").read_text())
    assert meta["reference_model"] is False and meta["reference"] == "base with adapters off"
    metrics = rows(tmp_path / "grpo" / "metrics.jsonl")
    assert metrics[0]["loss/kl"] == pytest.approx(0.0, abs=1e-7)  # B starts at zero: the policy is its base
    assert metrics[1]["loss/kl"] > 0  # one step later the adapters moved it away
