"""The trainer with ``rollout.engine: vllm``: two ranks through the real launcher, and a run killed
with SIGKILL and resumed, each rank sampling from its own in-process vLLM engine (vLLM's CPU build).

After every step the engines get the new weights: the log-probabilities vLLM reports for its
samples stay within ``GAP`` of the trainer's forward at every step (``rollout/logprob_gap``), the
ranks keep identical weights, and a resumed run samples the very same completions.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from trainer_testlib import SIGNAL_REWARD, killed_and_resumed, policy_state, rows, two_rank_run_with_fingerprints

STEPS = 4
GAP = 1e-4  # mean |log-prob| difference per sampled token; measured about 1e-7
ARGS = ("--rewards", f"format,accuracy,{SIGNAL_REWARD}", "--rollout.engine", "vllm", "--train.max_steps", str(STEPS),
        "--train.lr", "1e-3", "--output.save_every", "2", "--output.samples_per_step", "16")


@pytest.fixture(scope="module")
def two_ranks(train_env, model_args, tmp_path_factory) -> tuple[Path, list[dict]]:
    return two_rank_run_with_fingerprints(tmp_path_factory.mktemp("vllm2"), (*ARGS, *model_args), train_env)


@pytest.fixture(scope="module")
def resumed(train_env, model_args, tmp_path_factory) -> tuple[Path, Path, list[str]]:
    """Run ``a`` uninterrupted; run ``b`` (alongside) SIGKILLed at its first checkpoint, then resumed."""
    return killed_and_resumed(tmp_path_factory.mktemp("vllm-resume"), (*ARGS, *model_args), train_env, STEPS)


def test_two_ranks_keep_identical_weights_and_their_engines_follow(two_ranks):
    run_dir, gathered = two_ranks
    rank0, rank1 = sorted(gathered, key=lambda g: g["rank"])
    assert len(rank0["steps"]) == len(rank1["steps"]) == STEPS
    assert rank0["steps"] == rank1["steps"] and rank0["steps"][0] != rank0["steps"][-1]
    metrics = rows(run_dir / "metrics.jsonl")
    assert [m["step"] for m in metrics] == list(range(STEPS))
    assert all(0 <= m["rollout/logprob_gap"] < GAP and m["time/weight_sync"] > 0 for m in metrics)
    # the default correction (token_truncate at 2) weighs fp32 samples at about 1: nothing truncated
    assert all(0 <= m["mismatch/k3_kl"] < GAP and m["mismatch/corrected_share"] == 0 for m in metrics)
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["rollout"]["engine"] == "vllm"


def test_killed_and_resumed_run_samples_the_same_completions_and_weights(resumed):
    a, b, killed_with = resumed
    assert killed_with and killed_with[-1] != f"step-{STEPS:06d}"
    samples_a, samples_b = rows(a / "samples.jsonl"), rows(b / "samples.jsonl")
    assert [s["step"] for s in samples_b] == [s["step"] for s in samples_a]
    assert [s["completion"] for s in samples_a] == [s["completion"] for s in samples_b]
    assert all(m["rollout/logprob_gap"] < GAP for m in rows(b / "metrics.jsonl"))
    final_a, final_b = policy_state(a / "final"), policy_state(b / "final")
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a)
